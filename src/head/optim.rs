//! Optimisers written by hand (momentum SGD and Adam, both with L2 weight decay)
//! and learning-rate schedules over epochs.
//!
//! SGD, per parameter `p` with gradient `d_p`: `g = d_p + wd·p`, `v = μ·v + g`,
//! `p = p − lr·v` (PyTorch's formulation). Adam: `g = d_p + wd·p`,
//! `m = β1·m + (1 − β1)·g`, `v = β2·v + (1 − β2)·g²`, `m̂ = m / (1 − β1^k)`,
//! `v̂ = v / (1 − β2^k)`, `p = p − lr·m̂ / (√v̂ + ε)`. Weight decay applies to
//! every parameter, biases included.

use ndarray::{Array1, Array2, Zip};
use serde::{Deserialize, Serialize};

use super::{Gradients, Head, Linear, cast};
use crate::{Error, Result};

/// Which optimiser trains the head, with its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with momentum and L2 weight decay.
    Sgd {
        /// Base learning rate.
        lr: f32,
        /// Momentum `μ` in `[0, 1)`.
        momentum: f32,
        /// L2 weight decay.
        weight_decay: f32,
    },
    /// Adam with L2 weight decay added to the gradient.
    Adam {
        /// Base learning rate.
        lr: f32,
        /// Decay of the first moment, in `[0, 1)`.
        beta1: f32,
        /// Decay of the second moment, in `[0, 1)`.
        beta2: f32,
        /// Added to `√v̂` to avoid a division by zero.
        eps: f32,
        /// L2 weight decay.
        weight_decay: f32,
    },
}

impl OptimizerKind {
    /// The base learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            OptimizerKind::Sgd { lr, .. } | OptimizerKind::Adam { lr, .. } => lr,
        }
    }

    /// Checks every value's range.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!("{name} must be positive, got {v}")))
            }
        };
        let unit = |name: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!("{name} must be in [0, 1), got {v}")))
            }
        };
        let non_negative = |name: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!("{name} must be ≥ 0, got {v}")))
            }
        };
        match *self {
            OptimizerKind::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                positive("learning rate", lr)?;
                unit("momentum", momentum)?;
                non_negative("weight decay", weight_decay)
            }
            OptimizerKind::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                positive("learning rate", lr)?;
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("eps", eps)?;
                non_negative("weight decay", weight_decay)
            }
        }
    }
}

/// How the learning rate changes over the epochs of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` at each milestone epoch (0-based): the rate at epoch
    /// `e` is `lr · gamma^(number of milestones ≤ e)`.
    Step {
        /// Epochs at which the rate drops.
        milestones: Vec<usize>,
        /// Factor applied at each milestone.
        gamma: f32,
    },
    /// Cosine annealing from the base rate at epoch 0 towards `min_lr`:
    /// `min_lr + (lr − min_lr)·(1 + cos(π·e / epochs)) / 2`.
    Cosine {
        /// The floor reached at the end of the step.
        min_lr: f32,
    },
}

impl Schedule {
    /// The learning rate at epoch `epoch` (0-based) of `epochs`.
    pub fn lr_at(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match self {
            Schedule::Constant => base,
            Schedule::Step { milestones, gamma } => {
                let drops = milestones.iter().filter(|&&m| m <= epoch).count();
                base * gamma.powi(drops as i32)
            }
            Schedule::Cosine { min_lr } => {
                let progress = epoch as f64 / epochs.max(1) as f64;
                let cos = (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0;
                (*min_lr as f64 + (base as f64 - *min_lr as f64) * cos) as f32
            }
        }
    }

    /// Checks every value's range.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the value out of range.
    pub fn validate(&self) -> Result<()> {
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { gamma, .. } if !(gamma.is_finite() && *gamma > 0.0) => Err(
                Error::Config(format!("schedule gamma must be positive, got {gamma}")),
            ),
            Schedule::Step { .. } => Ok(()),
            Schedule::Cosine { min_lr } if !(min_lr.is_finite() && *min_lr >= 0.0) => Err(
                Error::Config(format!("cosine min_lr must be ≥ 0, got {min_lr}")),
            ),
            Schedule::Cosine { .. } => Ok(()),
        }
    }
}

/// An optimiser's running state for one head (one velocity or pair of moments
/// per parameter). Create one per training run; it is tied to the head's shape.
#[derive(Clone, Debug)]
pub struct Optimizer<F> {
    kind: OptimizerKind,
    /// SGD: velocity. Adam: first moment.
    first: Vec<Linear<F>>,
    /// Adam: second moment (empty for SGD).
    second: Vec<Linear<F>>,
    /// Number of updates done (Adam's bias correction).
    t: i32,
}

impl<F: super::Float> Optimizer<F> {
    /// Fresh state (zero velocity or moments) for `head`.
    pub fn new(kind: OptimizerKind, head: &Head<F>) -> Self {
        let zeros = || -> Vec<Linear<F>> {
            head.layers()
                .map(|l| Linear {
                    w: Array2::zeros(l.w.dim()),
                    b: Array1::zeros(l.b.len()),
                })
                .collect()
        };
        let second = match kind {
            OptimizerKind::Adam { .. } => zeros(),
            OptimizerKind::Sgd { .. } => Vec::new(),
        };
        Optimizer {
            kind,
            first: zeros(),
            second,
            t: 0,
        }
    }

    /// Applies one update with learning rate `lr`.
    ///
    /// # Panics
    ///
    /// If `grads` or the head do not have the shapes the optimiser was made for.
    pub fn step(&mut self, head: &mut Head<F>, grads: &Gradients<F>, lr: f32) {
        assert_eq!(
            grads.layers.len(),
            self.first.len(),
            "gradients must match the optimiser's head"
        );
        self.t += 1;
        let lr: F = cast(lr as f64);
        match self.kind {
            OptimizerKind::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                let (mu, wd) = (cast::<F>(momentum as f64), cast::<F>(weight_decay as f64));
                let update = |p: &mut F, v: &mut F, &d: &F| {
                    let g = d + wd * *p;
                    *v = mu * *v + g;
                    *p -= lr * *v;
                };
                for ((layer, grad), vel) in
                    head.layers_mut().zip(&grads.layers).zip(&mut self.first)
                {
                    Zip::from(&mut layer.w)
                        .and(&mut vel.w)
                        .and(&grad.w)
                        .for_each(update);
                    Zip::from(&mut layer.b)
                        .and(&mut vel.b)
                        .and(&grad.b)
                        .for_each(update);
                }
            }
            OptimizerKind::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                let (b1, b2) = (cast::<F>(beta1 as f64), cast::<F>(beta2 as f64));
                let (eps, wd) = (cast::<F>(eps as f64), cast::<F>(weight_decay as f64));
                let one = F::one();
                let c1 = one - b1.powi(self.t);
                let c2 = one - b2.powi(self.t);
                let update = |p: &mut F, m: &mut F, v: &mut F, &d: &F| {
                    let g = d + wd * *p;
                    *m = b1 * *m + (one - b1) * g;
                    *v = b2 * *v + (one - b2) * g * g;
                    let m_hat = *m / c1;
                    let v_hat = *v / c2;
                    *p -= lr * m_hat / (v_hat.sqrt() + eps);
                };
                let layers = head.layers_mut().zip(&grads.layers);
                for ((layer, grad), (m, v)) in
                    layers.zip(self.first.iter_mut().zip(self.second.iter_mut()))
                {
                    Zip::from(&mut layer.w)
                        .and(&mut m.w)
                        .and(&mut v.w)
                        .and(&grad.w)
                        .for_each(update);
                    Zip::from(&mut layer.b)
                        .and(&mut m.b)
                        .and(&mut v.b)
                        .and(&grad.b)
                        .for_each(update);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn one_param_head(w: f64) -> Head<f64> {
        Head {
            hidden: vec![],
            output: Linear {
                w: array![[w]],
                b: array![0.0],
            },
        }
    }

    fn grad(d: f64) -> Gradients<f64> {
        Gradients {
            layers: vec![Linear {
                w: array![[d]],
                b: array![0.0],
            }],
        }
    }

    #[test]
    fn sgd_momentum_and_weight_decay_by_hand() {
        // p = 1, d = 0.5, wd = 0.1, μ = 0.9, lr = 0.1.
        // step 1: g = 0.5 + 0.1·1 = 0.6, v = 0.6, p = 1 − 0.06 = 0.94.
        // step 2: g = 0.5 + 0.094 = 0.594, v = 0.9·0.6 + 0.594 = 1.134,
        //         p = 0.94 − 0.1134 = 0.8266.
        let kind = OptimizerKind::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.1,
        };
        let mut head = one_param_head(1.0);
        let mut opt = Optimizer::new(kind, &head);
        opt.step(&mut head, &grad(0.5), 0.1);
        assert!((head.output.w[[0, 0]] - 0.94).abs() < 1e-7);
        opt.step(&mut head, &grad(0.5), 0.1);
        assert!((head.output.w[[0, 0]] - 0.8266).abs() < 1e-7);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction, m̂ = g and v̂ = g² on the first step, so the
        // parameter moves by lr·g / (|g| + ε) ≈ lr·sign(g).
        let kind = OptimizerKind::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut head = one_param_head(1.0);
        let mut opt = Optimizer::new(kind, &head);
        opt.step(&mut head, &grad(-3.0), 0.01);
        assert!((head.output.w[[0, 0]] - 1.01).abs() < 1e-7);
    }

    #[test]
    fn schedules() {
        let step = Schedule::Step {
            milestones: vec![2, 4],
            gamma: 0.1,
        };
        let lrs: Vec<f32> = (0..6).map(|e| step.lr_at(1.0, e, 6)).collect();
        let want = [1.0, 1.0, 0.1, 0.1, 0.01, 0.01];
        for (got, want) in lrs.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{lrs:?}");
        }
        let cos = Schedule::Cosine { min_lr: 0.0 };
        assert_eq!(cos.lr_at(2.0, 0, 10), 2.0);
        // Halfway, cos(π/2) = 0, so the rate is (2 − 0)/2 = 1.
        assert!((cos.lr_at(2.0, 5, 10) - 1.0).abs() < 1e-6);
        assert_eq!(Schedule::Constant.lr_at(0.3, 7, 10), 0.3);
    }

    #[test]
    fn validation_rejects_bad_values() {
        let bad = OptimizerKind::Sgd {
            lr: 0.0,
            momentum: 0.9,
            weight_decay: 0.0,
        };
        assert!(matches!(bad.validate(), Err(Error::Config(_))));
        let bad = OptimizerKind::Adam {
            lr: 1e-3,
            beta1: 1.0,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        assert!(matches!(bad.validate(), Err(Error::Config(_))));
        assert!(Schedule::Cosine { min_lr: -1.0 }.validate().is_err());
    }
}
