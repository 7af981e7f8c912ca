//! The class-incremental protocol: learn classes step by step, evaluate after each step.
//!
//! A run takes a labelled train and test split of frozen features, a class order and
//! step sizes (`[base, increment, increment, …]`). After every step it measures top-1
//! accuracy on the test samples of all classes seen so far, for the nearest-mean-of-
//! exemplars classifier and for the head, and at the end summarises: average
//! incremental accuracy, final accuracy, forgetting, and the joint-training upper
//! bound (a linear head trained on all classes at once on the same features).

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::learner::{Classifier, Learner, LearnerConfig, Strategy};
use crate::{Error, Result};

/// Labelled feature vectors: `x: (n, d)` and one class index per row.
#[derive(Clone, Debug)]
pub struct Split {
    /// Features, `(n, d)`.
    pub x: Array2<f32>,
    /// Class index of each row, into [`FeatureData::class_names`].
    pub labels: Vec<usize>,
}

/// A data set of frozen features with a train and a test split.
#[derive(Clone, Debug)]
pub struct FeatureData {
    /// Class names; labels index into this list.
    pub class_names: Vec<String>,
    /// Samples the learner trains on.
    pub train: Split,
    /// Samples the learner is evaluated on.
    pub test: Split,
}

impl Split {
    /// The rows whose label is in `classes`, as `(x, class names)`.
    fn select(&self, classes: &[usize], names: &[String]) -> (Array2<f32>, Vec<String>) {
        let rows: Vec<usize> = (0..self.labels.len())
            .filter(|&i| classes.contains(&self.labels[i]))
            .collect();
        let x = self.x.select(Axis(0), &rows);
        let labels = rows
            .iter()
            .map(|&i| names[self.labels[i]].clone())
            .collect();
        (x, labels)
    }
}

/// What a protocol run does: the class order, the step sizes and the learner.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolConfig {
    /// Class indices in the order they are learned.
    pub order: Vec<usize>,
    /// Number of classes in each step: the base step, then the increments.
    pub steps: Vec<usize>,
    /// The learner's configuration (memory, head, optimiser, seed).
    pub learner: LearnerConfig,
    /// Whether to train the joint upper bound as well.
    pub joint: bool,
}

/// A value measured for each classifier of the learner, by classifier name
/// (`"nme"` and `"head"` for iCaRL, `"slda"`, `"ridge"` or `"ncm"` otherwise).
pub type PerClassifier = BTreeMap<String, f64>;

/// The result of one step of a protocol run.
#[derive(Clone, Debug, Serialize)]
pub struct StepResult {
    /// Step number, from 0 (the base step).
    pub step: usize,
    /// The classes this step added.
    pub new_classes: Vec<String>,
    /// Every class seen so far, in learning order.
    pub classes_seen: Vec<String>,
    /// Top-1 accuracy on the test samples of all classes seen so far.
    pub accuracy: PerClassifier,
    /// Accuracy on each seen class's test samples, in `classes_seen` order.
    #[serde(skip)]
    pub per_class: Vec<PerClassifier>,
    /// Exemplars stored after the step.
    pub exemplars: usize,
    /// Wall-clock seconds the step took to learn (evaluation excluded).
    pub seconds: f64,
}

/// The summary of a protocol run; serialises to the JSON schema the README documents.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolReport {
    /// The protocol as run.
    pub protocol: ProtocolSummary,
    /// One entry per step.
    pub steps: Vec<StepResult>,
    /// Mean over steps of the accuracy after each step.
    pub average_incremental_accuracy: PerClassifier,
    /// Accuracy after the last step, over all classes.
    pub final_accuracy: PerClassifier,
    /// Mean over the classes learned before the last step of (best accuracy − final accuracy).
    pub forgetting: PerClassifier,
    /// Size of the learner's state file after the last step, in bytes.
    pub state_bytes: usize,
    /// Accuracy of a linear head trained on all classes at once, if it was run.
    pub joint_upper_bound: Option<f64>,
}

/// The protocol part of a [`ProtocolReport`].
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolSummary {
    /// Class names in learning order.
    pub order: Vec<String>,
    /// Classes per step.
    pub steps: Vec<usize>,
    /// Training samples and test samples.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// Feature dimension.
    pub dim: usize,
    /// The learner's configuration.
    pub learner: LearnerConfig,
}

/// The class order: `order` as given (checked), or a seeded shuffle of all classes.
///
/// # Errors
///
/// [`Error::Config`] when `order` repeats a class or names one out of range.
pub fn class_order(n_classes: usize, order: Option<&[usize]>, seed: u64) -> Result<Vec<usize>> {
    match order {
        Some(order) => {
            let mut seen = vec![false; n_classes];
            for &c in order {
                if c >= n_classes {
                    return Err(Error::Config(format!(
                        "class order names class {c}, but there are only {n_classes} classes"
                    )));
                }
                if std::mem::replace(&mut seen[c], true) {
                    return Err(Error::Config(format!("class order repeats class {c}")));
                }
            }
            Ok(order.to_vec())
        }
        None => {
            let mut order: Vec<usize> = (0..n_classes).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
            Ok(order)
        }
    }
}

/// Step sizes from a base and either explicit increments or a fixed step.
///
/// With `increments` empty and `step` `None`, the rest of the classes come in one step.
///
/// # Errors
///
/// [`Error::Config`] when a size is zero or the sizes do not add up to `n_classes`.
pub fn step_sizes(
    n_classes: usize,
    base: usize,
    increments: &[usize],
    step: Option<usize>,
) -> Result<Vec<usize>> {
    let mut sizes = vec![base];
    if !increments.is_empty() {
        sizes.extend_from_slice(increments);
    } else {
        let step = step.unwrap_or(n_classes.saturating_sub(base).max(1));
        if step == 0 {
            return Err(Error::Config("step size must be at least 1".into()));
        }
        let mut left = n_classes.saturating_sub(base);
        while left > 0 {
            sizes.push(step.min(left));
            left -= step.min(left);
        }
    }
    if sizes.contains(&0) {
        return Err(Error::Config(format!(
            "step sizes {sizes:?} contain a zero"
        )));
    }
    let total: usize = sizes.iter().sum();
    if total != n_classes {
        return Err(Error::Config(format!(
            "step sizes {sizes:?} add up to {total} classes, but the order has {n_classes}"
        )));
    }
    Ok(sizes)
}

/// Runs the protocol, calling `on_step` after each step is evaluated.
///
/// # Errors
///
/// Bad step sizes or order ([`Error::Config`]), or any error from learning.
pub fn run(
    data: &FeatureData,
    config: &ProtocolConfig,
    on_step: &mut dyn FnMut(&StepResult),
) -> Result<ProtocolReport> {
    let Some((&base, increments)) = config.steps.split_first() else {
        return Err(Error::Config("a protocol needs at least one step".into()));
    };
    step_sizes(config.order.len(), base, increments, None)?;
    let names = &data.class_names;
    let dim = data.train.x.ncols();
    let mut learner = Learner::new(dim, config.learner.clone())?;

    let mut steps = Vec::with_capacity(config.steps.len());
    let mut start = 0;
    for (step, &size) in config.steps.iter().enumerate() {
        let new = &config.order[start..start + size];
        start += size;
        let seen = &config.order[..start];

        let (x, labels) = data.train.select(new, names);
        if x.nrows() == 0 {
            return Err(Error::EmptyStep(format!(
                "step {step}: no training samples for classes {:?}",
                new.iter().map(|&c| &names[c]).collect::<Vec<_>>()
            )));
        }
        let clock = Instant::now();
        learner.learn(x.view(), &labels, None)?;
        let seconds = clock.elapsed().as_secs_f64();

        let (accuracy, per_class) = evaluate_seen(&learner, &data.test, seen, names)?;
        let result = StepResult {
            step,
            new_classes: new.iter().map(|&c| names[c].clone()).collect(),
            classes_seen: seen.iter().map(|&c| names[c].clone()).collect(),
            accuracy,
            per_class,
            exemplars: learner.exemplar_counts().iter().sum(),
            seconds,
        };
        on_step(&result);
        steps.push(result);
    }

    let joint_upper_bound = if config.joint {
        Some(joint_accuracy(data, &config.order, &config.learner)?)
    } else {
        None
    };
    let n_steps = steps.len() as f64;
    let mut average = PerClassifier::new();
    for s in &steps {
        for (name, acc) in &s.accuracy {
            *average.entry(name.clone()).or_default() += acc / n_steps;
        }
    }
    let last = steps.last().expect("the protocol has at least one step");
    Ok(ProtocolReport {
        protocol: ProtocolSummary {
            order: config.order.iter().map(|&c| names[c].clone()).collect(),
            steps: config.steps.clone(),
            train_samples: data.train.labels.len(),
            test_samples: data.test.labels.len(),
            dim,
            learner: config.learner.clone(),
        },
        average_incremental_accuracy: average,
        final_accuracy: last.accuracy.clone(),
        state_bytes: learner.encoded_len()?,
        forgetting: forgetting(&steps),
        joint_upper_bound,
        steps,
    })
}

/// Mean over the classes learned before the last step of `best − final` accuracy.
///
/// Classes of the last step have had no chance to be forgotten and are left out;
/// with a single step there is nothing to forget and the result is zero.
pub fn forgetting(steps: &[StepResult]) -> PerClassifier {
    let mut total = PerClassifier::new();
    let Some(last) = steps.last() else {
        return total;
    };
    let old = last.classes_seen.len() - last.new_classes.len();
    for name in last.accuracy.keys() {
        let mut drop = 0.0;
        for class in 0..old {
            // A class's position in `classes_seen` is the same in every step that has seen it.
            let best = steps
                .iter()
                .filter_map(|s| s.per_class.get(class).and_then(|a| a.get(name)))
                .fold(0.0f64, |b, &a| b.max(a));
            drop += best - last.per_class[class][name];
        }
        total.insert(name.clone(), if old == 0 { 0.0 } else { drop / old as f64 });
    }
    total
}

/// Accuracy of every classifier of the learner on the test samples of `seen`,
/// overall and per class.
fn evaluate_seen(
    learner: &Learner,
    test: &Split,
    seen: &[usize],
    names: &[String],
) -> Result<(PerClassifier, Vec<PerClassifier>)> {
    let (x, truth) = test.select(seen, names);
    if x.nrows() == 0 {
        return Err(Error::EmptyStep(
            "no test samples for the classes seen so far".into(),
        ));
    }
    let mut overall = PerClassifier::new();
    let mut per_class = vec![PerClassifier::new(); seen.len()];
    for &by in learner.classifiers() {
        let predicted = predicted_names(learner, x.view(), by)?;
        overall.insert(by.name().into(), accuracy(&predicted, &truth));
        for (slot, &class) in per_class.iter_mut().zip(seen) {
            let name = &names[class];
            let rows: Vec<usize> = (0..truth.len()).filter(|&i| &truth[i] == name).collect();
            let hits = rows.iter().filter(|&&i| &predicted[i] == name).count();
            slot.insert(by.name().into(), hits as f64 / rows.len().max(1) as f64);
        }
    }
    Ok((overall, per_class))
}

fn predicted_names(learner: &Learner, x: ArrayView2<f32>, by: Classifier) -> Result<Vec<String>> {
    Ok(learner
        .predict(x, by, 1)?
        .into_iter()
        .map(|p| p.class)
        .collect())
}

/// Fraction of positions where `predicted` equals `truth`.
pub fn accuracy<T: PartialEq>(predicted: &[T], truth: &[T]) -> f64 {
    let hits = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    hits as f64 / truth.len().max(1) as f64
}

/// The joint-training upper bound: a linear head trained on all classes at once.
///
/// Same optimiser, epochs and seed as the incremental learner, no hidden layer, no
/// exemplar memory (nothing is ever forgotten in a single step); its accuracy is
/// measured with the head's argmax on the test samples of the classes in `order`.
///
/// # Errors
///
/// Any error from learning.
pub fn joint_accuracy(data: &FeatureData, order: &[usize], base: &LearnerConfig) -> Result<f64> {
    let config = LearnerConfig {
        hidden: Vec::new(),
        memory: 0,
        strategy: Strategy::Icarl,
        balance: false,
        weight_align: false,
        ..base.clone()
    };
    let mut learner = Learner::new(data.train.x.ncols(), config)?;
    let (x, labels) = data.train.select(order, &data.class_names);
    learner.learn(x.view(), &labels, None)?;
    let (x, truth) = data.test.select(order, &data.class_names);
    let predicted = predicted_names(&learner, x.view(), Classifier::Head)?;
    Ok(accuracy(&predicted, &truth))
}

/// A confusion matrix: `counts[[truth, predicted]]` over `n_classes` classes.
pub fn confusion_matrix(predicted: &[usize], truth: &[usize], n_classes: usize) -> Array2<usize> {
    let mut counts = Array2::zeros((n_classes, n_classes));
    for (&p, &t) in predicted.iter().zip(truth) {
        counts[[t, p]] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(nme: f64, head: f64) -> PerClassifier {
        PerClassifier::from([("nme".into(), nme), ("head".into(), head)])
    }

    fn step(seen: &[&str], new: usize, per_class: &[(f64, f64)]) -> StepResult {
        StepResult {
            step: 0,
            new_classes: seen[seen.len() - new..]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            classes_seen: seen.iter().map(|s| s.to_string()).collect(),
            accuracy: both(0.0, 0.0),
            per_class: per_class
                .iter()
                .map(|&(nme, head)| both(nme, head))
                .collect(),
            exemplars: 0,
            seconds: 0.0,
        }
    }

    #[test]
    fn forgetting_is_the_mean_drop_from_best_to_final_over_old_classes() {
        // Class a: best 0.9 (step 0), final 0.6 → drop 0.3 (nme); head best 1.0, final 0.5 → 0.5.
        // Class b: best 0.8 (step 1), final 0.7 → drop 0.1 (nme); head best 0.9, final 0.9 → 0.
        // Class c arrives in the last step and is left out.
        // Mean: nme (0.3 + 0.1) / 2 = 0.2; head (0.5 + 0) / 2 = 0.25.
        let steps = [
            step(&["a"], 1, &[(0.9, 1.0)]),
            step(&["a", "b"], 1, &[(0.7, 0.8), (0.8, 0.9)]),
            step(&["a", "b", "c"], 1, &[(0.6, 0.5), (0.7, 0.9), (1.0, 1.0)]),
        ];
        let f = forgetting(&steps);
        assert!((f["nme"] - 0.2).abs() < 1e-12, "{f:?}");
        assert!((f["head"] - 0.25).abs() < 1e-12, "{f:?}");
    }

    #[test]
    fn a_single_step_forgets_nothing() {
        let steps = [step(&["a", "b"], 2, &[(0.5, 0.5), (0.5, 0.5)])];
        assert_eq!(forgetting(&steps), both(0.0, 0.0));
    }

    #[test]
    fn step_sizes_from_increments_or_a_fixed_step() {
        assert_eq!(
            step_sizes(10, 5, &[2, 2, 1], None).expect("valid input"),
            [5, 2, 2, 1]
        );
        assert_eq!(
            step_sizes(10, 4, &[], Some(4)).expect("valid input"),
            [4, 4, 2]
        );
        assert_eq!(step_sizes(10, 10, &[], None).expect("valid input"), [10]);
        assert!(step_sizes(10, 5, &[2, 2], None).is_err());
        assert!(step_sizes(10, 0, &[5, 5], None).is_err());
    }

    #[test]
    fn class_order_is_a_seeded_permutation_or_the_given_one() {
        let a = class_order(10, None, 1).expect("valid input");
        assert_eq!(a, class_order(10, None, 1).expect("valid input"));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(
            class_order(3, Some(&[2, 0, 1]), 0).expect("valid input"),
            [2, 0, 1]
        );
        assert!(class_order(3, Some(&[2, 2, 1]), 0).is_err());
        assert!(class_order(3, Some(&[3]), 0).is_err());
    }

    #[test]
    fn confusion_matrix_counts_truth_by_prediction() {
        let m = confusion_matrix(&[0, 1, 1, 2], &[0, 1, 2, 2], 3);
        assert_eq!(m[[0, 0]], 1);
        assert_eq!(m[[1, 1]], 1);
        assert_eq!(m[[2, 1]], 1);
        assert_eq!(m[[2, 2]], 1);
        assert_eq!(m.sum(), 4);
    }
}
