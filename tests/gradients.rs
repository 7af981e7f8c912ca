//! Backward passes checked against central finite differences in f64.
//!
//! For every checked value, `numeric = (ℓ(θ + h) − ℓ(θ − h)) / 2h` with
//! `h = 1e-5`; its error is `O(h²)` from truncation plus `O(ε·ℓ/h)` from
//! rounding, about 1e-11 here. The relative error
//! `|analytic − numeric| / max(|analytic| + |numeric|, 1e-4)` must stay below 1e-6
//! (the floor turns it into an absolute bound of 1e-10 for gradients below
//! 1e-4, where the rounding error of the difference quotient dominates).

use continual::LossKind;
use continual::head::{Head, Linear};
use continual::loss::{Targets, loss_and_grad};
use ndarray::{Array1, Array2};
use ndarray_rand::rand::Rng;
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn rel_err(a: f64, n: f64) -> f64 {
    (a - n).abs() / (a.abs() + n.abs()).max(1e-4)
}

fn normal(shape: (usize, usize), scale: f64, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || {
        let v: f64 = StandardNormal.sample(rng);
        v * scale
    })
}

fn kinds() -> [LossKind; 3] {
    [
        LossKind::Bce { lambda: 1.0 },
        LossKind::Bce { lambda: 0.5 },
        LossKind::Softmax {
            lambda: 1.5,
            temperature: 2.0,
        },
    ]
}

/// A random batch problem: `(labels, distill, prev_logits)` for `t` classes of
/// which the first `n_old` are known before the step.
struct Problem {
    labels: Vec<usize>,
    distill: Vec<usize>,
    prev: Array2<f64>,
}

impl Problem {
    fn new(n: usize, t: usize, n_old: usize, rng: &mut ChaCha8Rng) -> Self {
        let labels = (0..n).map(|_| rng.random_range(0..t)).collect();
        // Distill a random subset of the old classes (the others are "refreshed").
        let distill: Vec<usize> = (0..n_old).filter(|_| rng.random_bool(0.7)).collect();
        let prev = normal((n, distill.len()), 2.0, rng);
        Problem {
            labels,
            distill,
            prev,
        }
    }

    fn targets(&self) -> Targets<'_, f64> {
        Targets {
            labels: &self.labels,
            distill: &self.distill,
            prev_logits: self.prev.view(),
        }
    }
}

#[test]
fn loss_gradient_wrt_logits() {
    for seed in 0..5u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (n, t, n_old) = (6, 7, 4);
        let problem = Problem::new(n, t, n_old, &mut rng);
        let logits = normal((n, t), 3.0, &mut rng);
        for kind in kinds() {
            let (_, grad) = loss_and_grad(&kind, logits.view(), &problem.targets());
            for i in 0..n {
                for y in 0..t {
                    let mut plus = logits.clone();
                    plus[[i, y]] += H;
                    let mut minus = logits.clone();
                    minus[[i, y]] -= H;
                    let (lp, _) = loss_and_grad(&kind, plus.view(), &problem.targets());
                    let (lm, _) = loss_and_grad(&kind, minus.view(), &problem.targets());
                    let numeric = (lp - lm) / (2.0 * H);
                    let err = rel_err(grad[[i, y]], numeric);
                    assert!(
                        err < TOL,
                        "seed {seed} {kind:?} d/dz[{i},{y}]: {} vs {numeric} (rel {err:e})",
                        grad[[i, y]]
                    );
                }
            }
        }
    }
}

fn loss_of(head: &Head<f64>, x: &Array2<f64>, kind: &LossKind, problem: &Problem) -> f64 {
    loss_and_grad(kind, head.forward(x.view()).view(), &problem.targets()).0
}

/// Perturbs one parameter of layer `l` (weight `(r, c)` or bias `r` when `c` is None).
fn perturbed(head: &Head<f64>, l: usize, r: usize, c: Option<usize>, delta: f64) -> Head<f64> {
    let mut out = head.clone();
    let layer: &mut Linear<f64> = out.layers_mut().nth(l).expect("layer exists");
    match c {
        Some(c) => layer.w[[r, c]] += delta,
        None => layer.b[r] += delta,
    }
    out
}

#[test]
fn head_gradients_for_every_parameter() {
    for seed in 0..4u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        let (n, d, t, n_old) = (7, 6, 5, 3);
        let mut head = Head::<f64>::new(d, &[5, 4], n_old, &mut rng);
        head.grow(t - n_old, &mut rng);
        // Random biases too, so the check does not rely on the zero initialisation.
        for layer in head.layers_mut() {
            let len = layer.b.len();
            layer.b = Array1::from_shape_simple_fn(len, || rng.random_range(-0.5..0.5));
        }
        let x = normal((n, d), 1.0, &mut rng);
        let problem = Problem::new(n, t, n_old, &mut rng);

        for kind in kinds() {
            let forward = head.forward_cached(x.view());
            let (_, d_logits) = loss_and_grad(&kind, forward.logits.view(), &problem.targets());
            let grads = head.backward(&forward, d_logits.view());
            let mut checked = 0;
            for (l, grad) in grads.layers.iter().enumerate() {
                let (n_out, n_in) = grad.w.dim();
                for r in 0..n_out {
                    for c in (0..n_in).map(Some).chain([None]) {
                        let analytic = match c {
                            Some(c) => grad.w[[r, c]],
                            None => grad.b[r],
                        };
                        let lp = loss_of(&perturbed(&head, l, r, c, H), &x, &kind, &problem);
                        let lm = loss_of(&perturbed(&head, l, r, c, -H), &x, &kind, &problem);
                        let numeric = (lp - lm) / (2.0 * H);
                        let err = rel_err(analytic, numeric);
                        assert!(
                            err < TOL,
                            "seed {seed} {kind:?} layer {l} ({r}, {c:?}): {analytic} vs {numeric} (rel {err:e})"
                        );
                        checked += 1;
                    }
                }
            }
            // (5·6 + 5) + (4·5 + 4) + (5·4 + 5) parameters.
            assert_eq!(checked, 35 + 24 + 25);
        }
    }
}
