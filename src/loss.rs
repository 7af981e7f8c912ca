//! The combined loss of one incremental step: classification on the step's
//! classes plus distillation on the other known classes, and its gradient with
//! respect to the logits.
//!
//! Shapes: `logits: (n_batch, n_classes)`; `labels: (n_batch,)` class indices;
//! `distill` lists the distilled columns (classes absent from the step) and
//! `prev_logits: (n_batch, n_distill)` holds the pre-step head's logits on them.
//! Both variants return the batch mean.
//!
//! **BCE** ([`LossKind::Bce`], iCaRL, the default). Targets `T: (n_batch, n_classes)`:
//! on a distilled column `T = q = σ(prev_logit)`; on any other column `T = 1` if
//! it is the sample's class, else `0`. Column weights `λ_y = λ` on distilled
//! columns, `1` on the others. Per sample,
//! `ℓ = Σ_y λ_y [max(z,0) − z·T + log(1 + e^{−|z|})]`, which is the binary
//! cross-entropy `−λ_y [T log σ(z) + (1 − T) log(1 − σ(z))]` without the
//! overflow of `e^{−z}` for large negative `z` or the `log 0` of a saturated
//! sigmoid. Gradient: `d_logits = λ_y (σ(z) − T) / n_batch`. With `λ = 0` the
//! distilled outputs get no gradient at all: they keep their weights but are
//! not trained to say "no" to the step's samples.
//!
//! **Softmax** ([`LossKind::Softmax`], LwF-style). With `p = softmax(z)` over all
//! columns, `u = z[distill] / τ`, `u' = prev_logits / τ`,
//! `ℓ = −log p_label + λ·τ²·Σ_j −softmax(u')_j · log softmax(u)_j`
//! (cross-entropy on the true class, plus the soft cross-entropy between the
//! pre-step and current temperature-softened distributions on the distilled
//! columns; it differs from the KL divergence only by a constant). Gradient:
//! `d_z = (p − onehot(label)) / n_batch`, plus `λ·τ·(softmax(u) − softmax(u')) / n_batch`
//! on the distilled columns. With `λ = 0` and no exemplars this is plain
//! fine-tuning: old classes only ever appear as wrong answers.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, NdFloat};
use serde::{Deserialize, Serialize};

use crate::head::cast;
use crate::{Error, Result};

/// Which loss trains the head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LossKind {
    /// Sigmoid binary cross-entropy per class; distillation targets are the
    /// pre-step head's sigmoid outputs (iCaRL; `lambda = 1` is the published loss).
    Bce {
        /// Weight `λ` of the distillation terms.
        lambda: f32,
    },
    /// Softmax cross-entropy plus temperature distillation on the distilled
    /// classes (Learning without Forgetting).
    Softmax {
        /// Weight `λ` of the distillation term.
        lambda: f32,
        /// Temperature `τ` (LwF uses 2).
        temperature: f32,
    },
}

impl Default for LossKind {
    fn default() -> Self {
        LossKind::Bce { lambda: 1.0 }
    }
}

impl LossKind {
    /// Checks every value's range.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `λ` is negative or not finite, or `τ` is not positive.
    pub fn validate(&self) -> Result<()> {
        let lambda = match *self {
            LossKind::Bce { lambda } => lambda,
            LossKind::Softmax {
                lambda,
                temperature,
            } => {
                if !(temperature.is_finite() && temperature > 0.0) {
                    return Err(Error::Config(format!(
                        "temperature must be positive, got {temperature}"
                    )));
                }
                lambda
            }
        };
        if lambda.is_finite() && lambda >= 0.0 {
            Ok(())
        } else {
            Err(Error::Config(format!("lambda must be ≥ 0, got {lambda}")))
        }
    }
}

/// What a batch is trained towards, besides its logits.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a, F> {
    /// The class index of every sample, `(n_batch,)`.
    pub labels: &'a [usize],
    /// The distilled columns (classes known before the step and absent from it).
    pub distill: &'a [usize],
    /// The pre-step head's logits on the distilled columns, `(n_batch, n_distill)`.
    pub prev_logits: ArrayView2<'a, F>,
}

/// Scales row `i` of `d_logits` by `weights[i]`, turning the gradient of the batch
/// mean `mean_i ℓ_i` into that of the weighted mean `mean_i w_i ℓ_i` (row `i` of the
/// gradient depends on sample `i` alone).
///
/// # Panics
///
/// If there is not one weight per row.
pub fn weight_rows<F: NdFloat>(d_logits: &mut Array2<F>, weights: &[F]) {
    assert_eq!(d_logits.nrows(), weights.len(), "one weight per row");
    for (mut row, &w) in d_logits.rows_mut().into_iter().zip(weights) {
        row *= w;
    }
}

/// The numerically stable logistic function.
pub fn sigmoid<F: NdFloat>(z: F) -> F {
    // Only ever exponentiate a non-positive number, so e^{…} cannot overflow.
    if z >= F::zero() {
        F::one() / (F::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (F::one() + e)
    }
}

/// The loss (batch mean) and `d_logits: (n_batch, n_classes)` for `kind`.
///
/// # Panics
///
/// If the shapes of `logits` and `targets` disagree, or a label or distilled
/// column is out of range (internal invariants: the learner builds both).
pub fn loss_and_grad<F: NdFloat>(
    kind: &LossKind,
    logits: ArrayView2<F>,
    targets: &Targets<F>,
) -> (F, Array2<F>) {
    let (n_batch, n_classes) = logits.dim();
    assert_eq!(targets.labels.len(), n_batch, "one label per row");
    assert_eq!(
        targets.prev_logits.dim(),
        (n_batch, targets.distill.len()),
        "one previous logit per row and distilled column"
    );
    match *kind {
        LossKind::Bce { lambda } => {
            let mut weights = Array1::<F>::ones(n_classes);
            let mut t = Array2::<F>::zeros((n_batch, n_classes));
            for (i, &label) in targets.labels.iter().enumerate() {
                t[[i, label]] = F::one();
            }
            for (j, &col) in targets.distill.iter().enumerate() {
                weights[col] = cast(lambda as f64);
                for i in 0..n_batch {
                    t[[i, col]] = sigmoid(targets.prev_logits[[i, j]]);
                }
            }
            bce_with_logits(logits, t.view(), weights.view())
        }
        LossKind::Softmax {
            lambda,
            temperature,
        } => softmax_distill(
            logits,
            targets,
            cast(lambda as f64),
            cast(temperature as f64),
        ),
    }
}

/// Weighted binary cross-entropy from logits, batch mean:
/// `mean_i Σ_y w_y [max(z,0) − z·T + log(1 + e^{−|z|})]`, and its gradient
/// `w_y (σ(z) − T) / n_batch`.
///
/// `logits, targets: (n_batch, n_classes)`, `weights: (n_classes,)`.
///
/// # Panics
///
/// If the shapes disagree.
pub fn bce_with_logits<F: NdFloat>(
    logits: ArrayView2<F>,
    targets: ArrayView2<F>,
    weights: ArrayView1<F>,
) -> (F, Array2<F>) {
    assert_eq!(
        logits.dim(),
        targets.dim(),
        "targets have the logits' shape"
    );
    assert_eq!(logits.ncols(), weights.len(), "one weight per column");
    let n_batch: F = cast(logits.nrows().max(1) as f64);
    let mut loss = F::zero();
    let mut d_logits = Array2::<F>::zeros(logits.dim());
    let rows = d_logits
        .rows_mut()
        .into_iter()
        .zip(logits.rows())
        .zip(targets.rows());
    for ((mut d_row, z_row), t_row) in rows {
        let cells = d_row.iter_mut().zip(z_row).zip(t_row).zip(weights);
        for (((d, &z), &t), &w) in cells {
            // One exponential serves both: e = e^{−|z|} ∈ (0, 1] never overflows,
            // and σ(z) = 1 / (1 + e) for z ≥ 0, e / (1 + e) otherwise. ln(1 + e)
            // rather than ln_1p(e): half the time, and an absolute error below one
            // unit in the last place of 1, far under the loss's own rounding.
            let e = (-z.abs()).exp();
            let one_e = F::one() + e;
            loss += w * (z.max(F::zero()) - z * t + one_e.ln());
            let sigma = if z >= F::zero() { F::one() } else { e } / one_e;
            *d = w * (sigma - t) / n_batch;
        }
    }
    (loss / n_batch, d_logits)
}

/// Softmax cross-entropy on the labels plus `λ·τ²`-weighted soft cross-entropy
/// on the distilled columns (see the module doc), batch mean, and its gradient.
///
/// # Panics
///
/// If the shapes disagree or an index is out of range.
pub fn softmax_distill<F: NdFloat>(
    logits: ArrayView2<F>,
    targets: &Targets<F>,
    lambda: F,
    temperature: F,
) -> (F, Array2<F>) {
    let n_batch: F = cast(logits.nrows().max(1) as f64);
    let mut loss = F::zero();
    let mut d_logits = Array2::<F>::zeros(logits.dim());
    let n_distill = targets.distill.len();
    let mut u = Array1::<F>::zeros(n_distill);
    let mut u_prev = Array1::<F>::zeros(n_distill);

    for (i, z) in logits.rows().into_iter().enumerate() {
        let label = targets.labels[i];
        let (lse, p) = log_sum_exp_softmax(z);
        loss += lse - z[label];
        let mut d = d_logits.row_mut(i);
        d.assign(&(p / n_batch));
        d[label] -= F::one() / n_batch;

        if n_distill > 0 {
            for (j, &col) in targets.distill.iter().enumerate() {
                u[j] = z[col] / temperature;
                u_prev[j] = targets.prev_logits[[i, j]] / temperature;
            }
            let (lse_u, p_u) = log_sum_exp_softmax(u.view());
            let (_, p_prev) = log_sum_exp_softmax(u_prev.view());
            // −Σ p_prev · log softmax(u) = lse(u) − Σ p_prev · u.
            let soft_ce = lse_u - p_prev.dot(&u);
            loss += lambda * temperature * temperature * soft_ce;
            for (j, &col) in targets.distill.iter().enumerate() {
                d[col] += lambda * temperature * (p_u[j] - p_prev[j]) / n_batch;
            }
        }
    }
    (loss / n_batch, d_logits)
}

/// `(log Σ e^{z}, softmax(z))`, shifting by `max z` so no exponential overflows.
fn log_sum_exp_softmax<F: NdFloat>(z: ArrayView1<F>) -> (F, Array1<F>) {
    let max = z.fold(F::neg_infinity(), |m, &v| m.max(v));
    let e = z.mapv(|v| (v - max).exp());
    let sum = e.sum();
    (max + sum.ln(), e / sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn bce_tiny_case_by_hand() {
        // One sample, two columns: z = [0, ln 3], T = [1, 0.25], weights [1, 2].
        // Column 0: max(0,0) − 0·1 + ln(1 + e⁰) = ln 2.
        // Column 1: ln 3 − ln 3·0.25 + ln(1 + 1/3) = 0.75·ln 3 + ln(4/3).
        // ℓ = ln 2 + 2·(0.75·ln 3 + ln 4 − ln 3) = ln 2 + 2 ln 4 − 0.5 ln 3
        //   = 0.693147 + 2.772589 − 0.549306 = 2.916430.
        // d_z0 = 1·(σ(0) − 1) = −0.5; d_z1 = 2·(σ(ln 3) − 0.25) = 2·(0.75 − 0.25) = 1.
        let (loss, d) = bce_with_logits(
            array![[0.0, 3f64.ln()]].view(),
            array![[1.0, 0.25]].view(),
            array![1.0, 2.0].view(),
        );
        let want = 2f64.ln() + 2.0 * 4f64.ln() - 0.5 * 3f64.ln();
        assert!((loss - want).abs() < 1e-12, "{loss} vs {want}");
        assert!((loss - 2.916430).abs() < 1e-6);
        assert!((d[[0, 0]] + 0.5).abs() < 1e-12);
        assert!((d[[0, 1]] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn weighted_rows_are_the_gradient_of_the_weighted_batch_mean() {
        // ℓ_w(z) = (1/n) Σ_i w_i ℓ_i(z_i), so ∂ℓ_w/∂z_ij = w_i ∂ℓ_i/∂z_ij / n: row i of
        // the unweighted batch gradient times w_i. Checked by central differences of
        // ℓ_w computed sample by sample (a batch of one gives ℓ_i), in both variants.
        let logits = array![[0.3, -1.2, 2.0], [-0.7, 0.4, 0.1], [1.5, 0.2, -0.3]];
        let prev = array![[0.5], [-1.0], [2.0]];
        let labels = [1usize, 2, 1];
        let distill = [0usize];
        let weights = [0.5f64, 2.0, 1.5];
        for kind in [
            LossKind::Bce { lambda: 1.0 },
            LossKind::Softmax {
                lambda: 0.7,
                temperature: 2.0,
            },
        ] {
            let weighted_loss = |z: &Array2<f64>| {
                (0..3)
                    .map(|i| {
                        let t = Targets {
                            labels: &labels[i..=i],
                            distill: &distill,
                            prev_logits: prev.slice(ndarray::s![i..=i, ..]),
                        };
                        let zi = z.slice(ndarray::s![i..=i, ..]);
                        weights[i] * loss_and_grad(&kind, zi, &t).0
                    })
                    .sum::<f64>()
                    / 3.0
            };
            let targets = Targets {
                labels: &labels,
                distill: &distill,
                prev_logits: prev.view(),
            };
            let (_, mut grad) = loss_and_grad(&kind, logits.view(), &targets);
            weight_rows(&mut grad, &weights);
            let h = 1e-6;
            for ((i, j), &g) in grad.indexed_iter() {
                let (mut up, mut down) = (logits.clone(), logits.clone());
                up[[i, j]] += h;
                down[[i, j]] -= h;
                let numeric = (weighted_loss(&up) - weighted_loss(&down)) / (2.0 * h);
                assert!(
                    (numeric - g).abs() <= 1e-7 * numeric.abs().max(1e-3),
                    "{kind:?} [{i},{j}]: numeric {numeric}, analytic {g}"
                );
            }
        }
    }

    #[test]
    fn bce_is_finite_for_huge_logits() {
        let (loss, d) = bce_with_logits(
            array![[1000.0f32, -1000.0]].view(),
            array![[0.0, 1.0]].view(),
            array![1.0, 1.0].view(),
        );
        // Each column costs |z| = 1000 (the log-term vanishes); gradient ±1.
        assert!((loss - 2000.0).abs() < 1e-3);
        assert_eq!(d, array![[1.0, -1.0]]);
    }

    #[test]
    fn combined_bce_builds_targets_from_labels_and_previous_logits() {
        // Three classes; class 0 is distilled (prev logit 0 → q = 0.5, λ = 2),
        // classes 1, 2 are the step's. Sample label 2, logits all 0:
        // ℓ = 2·ln 2 (col 0, any T at z = 0 costs ln 2) + ln 2 + ln 2 = 4 ln 2.
        // d = [2·(0.5 − 0.5), 0.5 − 0, 0.5 − 1] = [0, 0.5, −0.5].
        let prev = array![[0.0]];
        let targets = Targets {
            labels: &[2],
            distill: &[0],
            prev_logits: prev.view(),
        };
        let (loss, d) = loss_and_grad(
            &LossKind::Bce { lambda: 2.0 },
            array![[0.0, 0.0, 0.0]].view(),
            &targets,
        );
        assert!((loss - 4.0 * 2f64.ln()).abs() < 1e-12);
        assert_eq!(d, array![[0.0, 0.5, -0.5]]);
    }

    #[test]
    fn softmax_tiny_case_by_hand() {
        // Two classes, z = [0, 0], label 1, class 0 distilled with prev logit 0.
        // CE = −log(1/2) = ln 2. The distilled part has one column: softmax of a
        // single value is 1 for both, so soft CE = −1·log 1 = 0.
        // d = [0.5, 0.5 − 1] = [0.5, −0.5] (the one-column distillation term is 0).
        let prev = array![[0.0]];
        let targets = Targets {
            labels: &[1],
            distill: &[0],
            prev_logits: prev.view(),
        };
        let kind = LossKind::Softmax {
            lambda: 1.0,
            temperature: 2.0,
        };
        let (loss, d) = loss_and_grad(&kind, array![[0.0, 0.0]].view(), &targets);
        assert!((loss - 2f64.ln()).abs() < 1e-12);
        assert!((d[[0, 0]] - 0.5).abs() < 1e-12 && (d[[0, 1]] + 0.5).abs() < 1e-12);
    }

    #[test]
    fn sigmoid_is_stable_at_the_extremes() {
        assert_eq!(sigmoid(-1000.0f32), 0.0);
        assert_eq!(sigmoid(1000.0f32), 1.0);
        assert_eq!(sigmoid(0.0f64), 0.5);
    }

    #[test]
    fn validation() {
        assert!(LossKind::Bce { lambda: -1.0 }.validate().is_err());
        assert!(
            LossKind::Softmax {
                lambda: 1.0,
                temperature: 0.0
            }
            .validate()
            .is_err()
        );
        assert!(LossKind::default().validate().is_ok());
    }
}
