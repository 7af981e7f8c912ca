//! The learner's public API: steps of any shape, memory bounds, forgetting,
//! prediction, and errors on bad input.

mod common;

use common::{Clusters, accuracy, names, protocol, subset};
use continual::{Classifier, Error, Learner, LearnerConfig, LossKind};
use ndarray::{Array2, array};
use proptest::prelude::*;

fn quick(memory: usize) -> LearnerConfig {
    LearnerConfig {
        epochs: 3,
        memory,
        ..LearnerConfig::default()
    }
}

#[test]
fn forgetting_is_real_and_memory_plus_distillation_counter_it() {
    // d = 64, 10 classes in 5 steps of 2, 300 training / 100 test samples per
    // class, a head with one hidden layer of 128 (so the representation moves).
    // Fine-tuning: softmax cross-entropy on all outputs, no distillation (λ = 0),
    // no memory (K = 0). Measured final accuracy over all 10 classes (head, NME),
    // cluster seeds 7 / 8 / 9:
    //   fine-tuning                     0.184 0.177 / 0.193 0.190 / 0.185 0.187
    //   softmax, K = 2000, λ = 1        0.788 0.782 / 0.796 0.776 / 0.812 0.787
    //   iCaRL (BCE, K = 2000, λ = 1)    0.578 0.787 / 0.576 0.788 / 0.543 0.805
    //   joint training (one step)       0.812 0.797 (seed 7)
    // Thresholds leave a margin of about 0.1 on each side.
    let clusters = Clusters::new(64, 10, 2.5, 7);
    let steps: Vec<Vec<usize>> = (0..5).map(|k| vec![2 * k, 2 * k + 1]).collect();
    let base = LearnerConfig {
        hidden: vec![128],
        ..LearnerConfig::default()
    };
    let finetune = LearnerConfig {
        memory: 0,
        loss: LossKind::Softmax {
            lambda: 0.0,
            temperature: 2.0,
        },
        ..base.clone()
    };
    let both = LearnerConfig {
        loss: LossKind::Softmax {
            lambda: 1.0,
            temperature: 2.0,
        },
        ..base.clone()
    };

    let (ft_head, ft_nme, _) = protocol(&clusters, finetune, &steps, 300, 100);
    let (head, nme, _) = protocol(&clusters, both, &steps, 300, 100);
    let (icarl_head, icarl_nme, _) = protocol(&clusters, base, &steps, 300, 100);

    assert!(
        ft_head < 0.3 && ft_nme < 0.3,
        "fine-tuning: {ft_head} {ft_nme}"
    );
    assert!(
        head > 0.68 && nme > 0.68,
        "memory + distillation: {head} {nme}"
    );
    assert!(
        icarl_nme > 0.68 && icarl_head > 0.45,
        "iCaRL: {icarl_head} {icarl_nme}"
    );
    assert!(nme - ft_nme > 0.4 && icarl_nme - ft_nme > 0.4);
}

#[test]
fn joint_training_is_one_step_with_every_class() {
    // Measured: head 0.812, NME 0.811 (linear head, default settings).
    let clusters = Clusters::new(64, 10, 2.5, 7);
    let all = vec![(0..10).collect::<Vec<_>>()];
    let config = LearnerConfig {
        memory: 3000,
        ..LearnerConfig::default()
    };
    let (head, nme, _) = protocol(&clusters, config, &all, 300, 100);
    assert!(head > 0.75 && nme > 0.75, "{head} {nme}");
}

#[test]
fn memory_of_2000_over_30_classes_stays_within_budget() {
    let clusters = Clusters::new(16, 30, 1.0, 3);
    let mut learner = Learner::new(16, quick(2000)).expect("valid");
    for k in 0..6 {
        let classes: Vec<usize> = (5 * k..5 * k + 5).collect();
        let (x, y) = clusters.sample(&classes, 120, k as u64);
        let report = learner.learn(x.view(), &names(&y), None).expect("learns");
        let t = 5 * (k + 1);
        let m = 2000 / t;
        assert!(report.exemplars <= 2000);
        assert!(learner.exemplar_counts().iter().all(|&c| c == m.min(120)));
    }
    assert_eq!(learner.classes().len(), 30);
    // ⌊2000 / 30⌋ = 66 per class, 1980 in all.
    assert_eq!(learner.exemplar_counts().iter().sum::<usize>(), 1980);
}

#[test]
fn herding_through_the_learner_is_repeatable_and_never_duplicates() {
    let clusters = Clusters::new(8, 3, 1.0, 5);
    let (x, y) = clusters.sample(&[0, 1, 2], 50, 1);
    let meta: Vec<String> = (0..x.nrows()).map(|i| format!("img{i}.png")).collect();
    let run = || {
        let mut l = Learner::new(8, quick(60)).expect("valid");
        l.learn(x.view(), &names(&y), Some(&meta)).expect("learns");
        l
    };
    let (a, b) = (run(), run());
    for c in 0..3 {
        let ea = a.exemplars(c).expect("class exists");
        assert_eq!(ea, b.exemplars(c).expect("class exists"));
        assert_eq!(ea.len(), 20);
        let mut paths: Vec<&str> = ea
            .iter()
            .map(|e| e.meta.as_deref().expect("meta"))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), 20, "an exemplar chosen twice");
        // Each exemplar's metadata names the row its features came from.
        for e in ea {
            let i: usize = e.meta.as_deref().expect("meta")[3..]
                .trim_end_matches(".png")
                .parse()
                .expect("index");
            assert_eq!(e.x, x.row(i).to_vec());
            assert_eq!(y[i], c);
        }
    }
}

#[test]
fn shrinking_keeps_each_class_prefix() {
    let clusters = Clusters::new(8, 4, 1.0, 2);
    let mut learner = Learner::new(8, quick(40)).expect("valid");
    let (x, y) = clusters.sample(&[0, 1], 30, 1);
    learner.learn(x.view(), &names(&y), None).expect("learns");
    let before: Vec<_> = (0..2)
        .map(|c| learner.exemplars(c).expect("c").to_vec())
        .collect();
    assert_eq!(before[0].len(), 20);
    let (x, y) = clusters.sample(&[2, 3], 30, 2);
    learner.learn(x.view(), &names(&y), None).expect("learns");
    for (c, old) in before.iter().enumerate() {
        let now = learner.exemplars(c).expect("c");
        assert_eq!(now.len(), 10);
        assert_eq!(now, &old[..10]);
    }
}

#[test]
fn a_refreshed_class_improves_and_old_classes_hold() {
    // Class 0 first arrives with 2 samples only; class 1..3 with 200. Then a step
    // brings 200 more samples of class 0. Measured NME / head accuracy on class
    // 0: before 0.415 / 0.000, after 0.910 / 0.200; on classes 1..3: before
    // 0.880 / 0.367, after 0.855 / 0.367 (the BCE head favours the newest classes
    // on these overlapping clusters; NME is the classifier iCaRL relies on).
    let clusters = Clusters::new(32, 4, 2.0, 11);
    let config = LearnerConfig {
        memory: 400,
        ..LearnerConfig::default()
    };
    let mut learner = Learner::new(32, config).expect("valid");
    let (x0, y0) = clusters.sample(&[0], 2, 1);
    let (x1, y1) = clusters.sample(&[1], 200, 2);
    let x = ndarray::concatenate![ndarray::Axis(0), x0, x1];
    let y: Vec<usize> = y0.iter().chain(&y1).copied().collect();
    learner.learn(x.view(), &names(&y), None).expect("learns");
    let (x, y) = clusters.sample(&[2, 3], 200, 3);
    learner.learn(x.view(), &names(&y), None).expect("learns");

    let (xt, yt) = clusters.sample(&[0, 1, 2, 3], 200, 99);
    let (xt0, yt0) = subset(&xt, &yt, &[0]);
    let (xto, yto) = subset(&xt, &yt, &[1, 2, 3]);
    let nme_before = accuracy(&learner, &xt0, &yt0, Classifier::Nme);
    let head_before = accuracy(&learner, &xt0, &yt0, Classifier::Head);
    let nme_others_before = accuracy(&learner, &xto, &yto, Classifier::Nme);
    let head_others_before = accuracy(&learner, &xto, &yto, Classifier::Head);

    let (x, y) = clusters.sample(&[0], 200, 4);
    let report = learner.learn(x.view(), &names(&y), None).expect("learns");
    assert!(report.new_classes.is_empty());
    assert_eq!(report.refreshed_classes, vec!["class00".to_owned()]);
    assert_eq!(learner.classes().len(), 4);
    // m = ⌊400 / 4⌋ = 100 for every class, the refreshed one included.
    assert_eq!(learner.exemplar_counts(), vec![100; 4]);

    let nme_after = accuracy(&learner, &xt0, &yt0, Classifier::Nme);
    let head_after = accuracy(&learner, &xt0, &yt0, Classifier::Head);
    let nme_others = accuracy(&learner, &xto, &yto, Classifier::Nme);
    let head_others = accuracy(&learner, &xto, &yto, Classifier::Head);
    eprintln!(
        "class 0: {nme_before} {head_before} → {nme_after} {head_after}; \
         others: {nme_others_before} {head_others_before} → {nme_others} {head_others}"
    );
    assert!(nme_after > nme_before + 0.3, "{nme_before} → {nme_after}");
    assert!(
        head_after > head_before + 0.1,
        "{head_before} → {head_after}"
    );
    assert!(nme_others > 0.75 && nme_others > nme_others_before - 0.1);
    assert!(head_others > head_others_before - 0.1);
}

#[test]
fn classes_are_indexed_in_order_of_first_appearance() {
    let mut learner = Learner::new(2, quick(10)).expect("valid");
    let x = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 0.1]];
    let report = learner
        .learn(x.view(), &["b", "a", "b"], None)
        .expect("learns");
    assert_eq!(report.new_classes, vec!["b", "a"]);
    assert_eq!(learner.classes(), ["b", "a"]);
    assert_eq!(learner.class_index("a"), Some(1));
    assert_eq!(learner.class_index("zzz"), None);
    assert_eq!(learner.steps(), 1);
    assert_eq!(report.samples, 3);
}

#[test]
fn predictions_rank_scores() {
    let clusters = Clusters::new(8, 3, 0.5, 1);
    let (x, y) = clusters.sample(&[0, 1, 2], 40, 1);
    let mut learner = Learner::new(8, quick(100)).expect("valid");
    learner.learn(x.view(), &names(&y), None).expect("learns");
    for classifier in [Classifier::Nme, Classifier::Head] {
        let scores = learner.scores(x.view(), classifier).expect("scores");
        assert_eq!(scores.dim(), (120, 3));
        let preds = learner.predict(x.view(), classifier, 5).expect("predicts");
        for (p, row) in preds.iter().zip(scores.rows()) {
            assert_eq!(p.top.len(), 3, "top_k is capped at the number of classes");
            assert_eq!(p.top[0], (p.class.clone(), p.score));
            assert!(p.top.windows(2).all(|w| w[0].1 >= w[1].1));
            assert_eq!(row[p.index], p.score);
            assert_eq!(learner.classes()[p.index], p.class);
        }
    }
}

#[test]
fn memory_below_the_class_count_keeps_means() {
    // K = 1 < t: no exemplars are kept, but NME still works from the means
    // computed when each class was learned (the linear head's φ is x).
    let clusters = Clusters::new(8, 4, 0.3, 1);
    let mut learner = Learner::new(8, quick(1)).expect("valid");
    for k in 0..2 {
        let (x, y) = clusters.sample(&[2 * k, 2 * k + 1], 30, k as u64);
        learner.learn(x.view(), &names(&y), None).expect("learns");
    }
    assert_eq!(learner.exemplar_counts(), vec![0; 4]);
    let (xt, yt) = clusters.sample(&[0, 1, 2, 3], 50, 9);
    assert!(accuracy(&learner, &xt, &yt, Classifier::Nme) > 0.95);
}

#[test]
fn zero_epochs_is_nearest_class_mean() {
    let clusters = Clusters::new(8, 2, 0.3, 1);
    let config = LearnerConfig {
        epochs: 0,
        memory: 0,
        ..LearnerConfig::default()
    };
    let mut learner = Learner::new(8, config).expect("valid");
    let (x, y) = clusters.sample(&[0, 1], 30, 1);
    let report = learner.learn(x.view(), &names(&y), None).expect("learns");
    assert!(report.final_loss.is_nan());
    assert!(accuracy(&learner, &x, &y, Classifier::Nme) > 0.95);
}

#[test]
fn progress_hook_sees_every_epoch() {
    let mut learner = Learner::new(2, quick(10)).expect("valid");
    let mut seen = Vec::new();
    let x = array![[1.0f32, 0.0], [0.0, 1.0]];
    learner
        .learn_with(x.view(), &["a", "b"], None, &mut |e, n, loss| {
            seen.push((e, n, loss.is_finite()))
        })
        .expect("learns");
    assert_eq!(seen, vec![(1, 3, true), (2, 3, true), (3, 3, true)]);
}

#[test]
fn bad_input_gives_errors_and_leaves_the_learner_unchanged() {
    let mut learner = Learner::new(3, quick(10)).expect("valid");
    let good = array![[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0]];

    assert!(matches!(
        learner.scores(good.view(), Classifier::Nme),
        Err(Error::NoClasses)
    ));
    assert!(matches!(
        learner.predict(good.view(), Classifier::Head, 1),
        Err(Error::NoClasses)
    ));

    let empty = Array2::<f32>::zeros((0, 3));
    let no_labels: [&str; 0] = [];
    assert!(matches!(
        learner.learn(empty.view(), &no_labels, None),
        Err(Error::EmptyStep(_))
    ));

    let wide = Array2::<f32>::zeros((2, 4));
    match learner.learn(wide.view(), &["a", "b"], None) {
        Err(Error::Shape { expected, got, .. }) => {
            assert_eq!(expected[1], 3);
            assert_eq!(got, vec![2, 4]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }

    let mut nan = good.clone();
    nan[[1, 2]] = f32::NAN;
    match learner.learn(nan.view(), &["a", "b"], None) {
        Err(Error::NonFinite { row, col, .. }) => assert_eq!((row, col), (1, 2)),
        other => panic!("expected a non-finite error, got {other:?}"),
    }
    let mut inf = good.clone();
    inf[[0, 0]] = f32::INFINITY;
    assert!(matches!(
        learner.learn(inf.view(), &["a", "b"], None),
        Err(Error::NonFinite { .. })
    ));

    assert!(matches!(
        learner.learn(good.view(), &["a"], None),
        Err(Error::InvalidLabel(_))
    ));
    assert!(matches!(
        learner.learn(good.view(), &["a", ""], None),
        Err(Error::InvalidLabel(_))
    ));
    let meta = vec!["only one".to_owned()];
    assert!(matches!(
        learner.learn(good.view(), &["a", "b"], Some(&meta)),
        Err(Error::InvalidLabel(_))
    ));
    assert_eq!(learner.steps(), 0);
    assert!(learner.classes().is_empty());

    learner
        .learn(good.view(), &["a", "b"], None)
        .expect("learns");
    assert!(matches!(
        learner.scores(wide.view(), Classifier::Nme),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        learner.scores(nan.view(), Classifier::Head),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn bad_configurations_are_refused() {
    let bad = [
        LearnerConfig {
            batch_size: 0,
            ..LearnerConfig::default()
        },
        LearnerConfig {
            hidden: vec![8, 0],
            ..LearnerConfig::default()
        },
        LearnerConfig {
            loss: LossKind::Bce { lambda: f32::NAN },
            ..LearnerConfig::default()
        },
    ];
    for config in bad {
        assert!(matches!(Learner::new(4, config), Err(Error::Config(_))));
    }
    assert!(matches!(
        Learner::new(0, LearnerConfig::default()),
        Err(Error::Config(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the step sizes and the budget, the memory never exceeds K and
    /// every class holds at most ⌊K / t⌋.
    #[test]
    fn memory_never_exceeds_the_budget(
        budget in 0usize..60,
        steps in proptest::collection::vec((1usize..4, 1usize..12), 1..5),
    ) {
        let clusters = Clusters::new(4, 12, 1.0, 1);
        let config = LearnerConfig { epochs: 1, memory: budget, ..LearnerConfig::default() };
        let mut learner = Learner::new(4, config).expect("valid");
        let mut next = 0;
        for (k, (n_classes, per_class)) in steps.into_iter().enumerate() {
            // Classes wrap around, so some steps refresh known classes.
            let classes: Vec<usize> = (0..n_classes).map(|i| (next + i) % 12).collect();
            next += n_classes;
            let (x, y) = clusters.sample(&classes, per_class, k as u64);
            let report = learner.learn(x.view(), &names(&y), None).expect("learns");
            let t = learner.classes().len();
            prop_assert!(report.exemplars <= budget);
            prop_assert!(learner.exemplar_counts().iter().all(|&c| c <= budget / t));
        }
    }
}
