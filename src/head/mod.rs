//! The trainable head: optional `Linear → ReLU` hidden layers and a growing
//! linear output layer with one logit per known class, forward and backward by hand.
//!
//! Shapes: `x: (n_batch, n_in)`, `w: (n_out, n_in)`, `b: (n_out,)`, and each
//! layer computes `y = x·wᵀ + b`. Hidden layers apply `relu(y) = max(y, 0)`; the
//! output layer returns `logits: (n_batch, n_classes)`, and `g = σ(logits)` is
//! the per-class score. The representation `φ(x)` used by the exemplar memory
//! is `x` itself for a linear head, else the last hidden layer's output.
//!
//! Backward, for a layer with input `a: (n_batch, n_in)` and upstream gradient
//! `d_y: (n_batch, n_out)`: `d_w = d_yᵀ·a`, `d_b = Σ_rows d_y`, `d_a = d_y·w`,
//! and through a ReLU `d_y = d_a ⊙ [a_next > 0]`.

mod optim;

pub use optim::{Optimizer, OptimizerKind, Schedule};

use ndarray::{Array1, Array2, ArrayView2, Axis, CowArray, Ix2, NdFloat};

use crate::loss::{LossKind, Targets, loss_and_grad, weight_rows};
use ndarray_rand::rand::Rng;
use serde::{Deserialize, Serialize};

/// Converts an `f64` constant to the float type `F`.
pub(crate) fn cast<F: NdFloat>(x: f64) -> F {
    num_traits::cast(x).expect("an f64 constant converts to any float type")
}

/// One fully-connected layer, `y = x·wᵀ + b`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear<F> {
    /// Weights, `w: (n_out, n_in)`.
    pub w: Array2<F>,
    /// Biases, `b: (n_out,)`.
    pub b: Array1<F>,
}

impl<F: Float> Linear<F> {
    /// A layer with weights drawn from `U(−bound, bound)` and zero biases.
    pub fn uniform(n_out: usize, n_in: usize, bound: f64, rng: &mut impl Rng) -> Self {
        let w =
            Array2::from_shape_simple_fn((n_out, n_in), || cast(rng.random_range(-bound..=bound)));
        Linear {
            w,
            b: Array1::zeros(n_out),
        }
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.w.ncols()
    }

    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        self.w.nrows()
    }

    /// `y = x·wᵀ + b`, with `x: (n_batch, n_in)` and `y: (n_batch, n_out)`.
    pub fn forward(&self, x: ArrayView2<F>) -> Array2<F> {
        let mut y = Array2::zeros((x.nrows(), self.n_out()));
        y += &self.b;
        times_transposed(x, self.w.view(), true, &mut y);
        y
    }
}

/// The gradients of a loss with respect to every parameter of a [`Head`],
/// in the order of [`Head::layers`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients<F> {
    /// One `(d_w, d_b)` per layer, hidden layers first, the output layer last.
    pub layers: Vec<Linear<F>>,
}

/// What [`Head::forward_cached`] keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct Forward<'a, F> {
    /// The input of every layer: `inputs[0] = x` (borrowed, not copied),
    /// `inputs[l] = relu(hidden_l)`.
    pub inputs: Vec<CowArray<'a, F, Ix2>>,
    /// The output layer's result, `logits: (n_batch, n_classes)`.
    pub logits: Array2<F>,
}

/// Hidden `Linear → ReLU` layers (possibly none) and a linear output layer with
/// one logit per known class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head<F> {
    /// Hidden layers, applied in order, each followed by a ReLU.
    pub hidden: Vec<Linear<F>>,
    /// The output layer, `w: (n_classes, n_repr)`.
    pub output: Linear<F>,
}

impl<F: Float> Head<F> {
    /// A head for inputs of dimension `n_in` with the given hidden sizes and
    /// `n_classes` outputs.
    ///
    /// Hidden layers use He (Kaiming) uniform initialisation,
    /// `U(±√(6 / n_in))`, which keeps the variance of ReLU activations steady;
    /// output rows use the smaller `U(±1/√n_in)` so that first scores stay near
    /// `σ(0) = 0.5`. Biases start at zero.
    pub fn new(n_in: usize, hidden: &[usize], n_classes: usize, rng: &mut impl Rng) -> Self {
        let mut layers = Vec::with_capacity(hidden.len());
        let mut fan_in = n_in;
        for &n_out in hidden {
            let bound = (6.0 / fan_in.max(1) as f64).sqrt();
            layers.push(Linear::uniform(n_out, fan_in, bound, rng));
            fan_in = n_out;
        }
        let output = Linear::uniform(n_classes, fan_in, output_bound(fan_in), rng);
        Head {
            hidden: layers,
            output,
        }
    }

    /// Input dimension `d`.
    pub fn n_in(&self) -> usize {
        self.hidden.first().unwrap_or(&self.output).n_in()
    }

    /// Dimension of the representation `φ(x)`.
    pub fn n_repr(&self) -> usize {
        self.output.n_in()
    }

    /// Number of outputs (known classes).
    pub fn n_classes(&self) -> usize {
        self.output.n_out()
    }

    /// Every layer, hidden layers first and the output layer last.
    pub fn layers(&self) -> impl Iterator<Item = &Linear<F>> {
        self.hidden.iter().chain(std::iter::once(&self.output))
    }

    /// Every layer, mutably, in the order of [`Head::layers`].
    pub fn layers_mut(&mut self) -> impl Iterator<Item = &mut Linear<F>> {
        self.hidden
            .iter_mut()
            .chain(std::iter::once(&mut self.output))
    }

    /// Adds `n_new` output rows drawn from `rng`; every existing weight and bias
    /// is kept bit for bit.
    pub fn grow(&mut self, n_new: usize, rng: &mut impl Rng) {
        let n_repr = self.n_repr();
        let new = Linear::<F>::uniform(n_new, n_repr, output_bound(n_repr), rng);
        self.output
            .w
            .append(Axis(0), new.w.view())
            .expect("new output rows have the representation's width");
        self.output
            .b
            .append(Axis(0), new.b.view())
            .expect("a bias vector appends to a bias vector");
    }

    /// The representation `φ(x): (n_batch, n_repr)`.
    pub fn represent(&self, x: ArrayView2<F>) -> Array2<F> {
        let mut a = x.to_owned();
        for layer in &self.hidden {
            a = layer.forward(a.view()).mapv_into(relu);
        }
        a
    }

    /// `logits: (n_batch, n_classes)` for `x: (n_batch, n_in)`.
    pub fn forward(&self, x: ArrayView2<F>) -> Array2<F> {
        self.output.forward(self.represent(x).view())
    }

    /// The forward pass, keeping every layer's input for [`Head::backward`].
    pub fn forward_cached<'a>(&self, x: ArrayView2<'a, F>) -> Forward<'a, F> {
        let mut inputs = Vec::with_capacity(self.hidden.len() + 1);
        inputs.push(CowArray::from(x));
        for layer in &self.hidden {
            let a = inputs.last().expect("inputs starts with x");
            let next = layer.forward(a.view()).mapv_into(relu);
            inputs.push(CowArray::from(next));
        }
        let last = inputs.last().expect("inputs starts with x");
        let logits = self.output.forward(last.view());
        Forward { inputs, logits }
    }

    /// Gradients of the loss with respect to every parameter, given the cached
    /// forward pass and `d_logits: (n_batch, n_classes)`.
    ///
    /// # Panics
    ///
    /// If `d_logits` does not have the shape of `forward.logits`.
    pub fn backward(&self, forward: &Forward<F>, d_logits: ArrayView2<F>) -> Gradients<F> {
        assert_eq!(
            d_logits.dim(),
            forward.logits.dim(),
            "d_logits must have the shape of the logits"
        );
        let n_layers = self.hidden.len() + 1;
        let mut grads = Vec::with_capacity(n_layers);
        let mut d_y = d_logits.to_owned();

        for (l, layer) in self
            .layers()
            .collect::<Vec<_>>()
            .into_iter()
            .enumerate()
            .rev()
        {
            let a = &forward.inputs[l];
            let mut d_w = Array2::zeros(layer.w.dim());
            matmul_into(d_y.t(), a.view(), false, &mut d_w);
            let d_b = d_y.sum_axis(Axis(0));
            if l > 0 {
                // `a = relu(y_prev)`, so the ReLU's derivative is `[a > 0]`.
                let mut d_a = Array2::zeros(a.dim());
                matmul_into(d_y.view(), layer.w.view(), false, &mut d_a);
                ndarray::Zip::from(&mut d_a).and(a).for_each(|d, &a| {
                    if a <= F::zero() {
                        *d = F::zero();
                    }
                });
                d_y = d_a;
            }
            grads.push(Linear { w: d_w, b: d_b });
        }

        grads.reverse();
        Gradients { layers: grads }
    }

    /// Converts every parameter to another float type.
    pub fn cast<G: Float>(&self) -> Head<G> {
        let conv = |l: &Linear<F>| Linear {
            w: l.w
                .mapv(|v| cast::<G>(num_traits::cast::<F, f64>(v).unwrap_or(f64::NAN))),
            b: l.b
                .mapv(|v| cast::<G>(num_traits::cast::<F, f64>(v).unwrap_or(f64::NAN))),
        };
        Head {
            hidden: self.hidden.iter().map(conv).collect(),
            output: conv(&self.output),
        }
    }
}

/// The float types a [`Head`] computes in: `f32` and `f64`. Both ndarray (most
/// work) and faer (the matrix-vector products of [`times_transposed`]) handle them.
pub trait Float: NdFloat + faer::traits::ComplexField {}

impl<T: NdFloat + faer::traits::ComplexField> Float for T {}

/// Products with at most this many rows in the left operand take faer's
/// matrix-vector kernels in [`matmul_into`]: ndarray's general product
/// (matrixmultiply) packs all of the right operand into blocks first, which for
/// a single row costs more than the product itself (prediction of one sample:
/// 32 µs → 11 µs, `cargo bench --bench learner -- predict`). For larger products
/// matrixmultiply is the faster of the two (one head minibatch at
/// (256, 10, 128): 55 µs against 75 µs with faer).
pub const GEMV_ROWS: usize = 4;

/// `c = a·b`, or `c += a·b` with `accumulate`, for `a: (m, k)`, `b: (k, n)` and
/// `c: (m, n)`.
///
/// Products of at most [`GEMV_ROWS`] rows with row- or column-major operands run
/// on the calling thread with faer's kernels; the rest go to ndarray's product:
/// matrixmultiply, which may use up to `MATMUL_NUM_THREADS` threads for
/// products of 2²¹ multiply-adds or more (smaller ones are cut into pieces it
/// runs on the calling thread), or BLAS with the `blas` feature.
///
/// # Panics
///
/// If the shapes disagree.
pub fn matmul_into<F: Float>(
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    accumulate: bool,
    c: &mut Array2<F>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!((b.nrows(), c.dim()), (k, (m, n)), "a·b shapes");
    if m <= GEMV_ROWS
        && let (Some(a_f), Some(b_f)) = (faer_view(&a), faer_view(&b))
        && let Some(c_slice) = c.as_slice_mut()
    {
        let accum = if accumulate {
            faer::Accum::Add
        } else {
            faer::Accum::Replace
        };
        let c_f = faer::MatMut::from_row_major_slice_mut(c_slice, m, n);
        faer::linalg::matmul::matmul(c_f, accum, a_f, b_f, F::one(), faer::Par::Seq);
        return;
    }
    let beta = if accumulate { F::one() } else { F::zero() };
    #[cfg(not(feature = "blas"))]
    if k > 0 && m * k * n < SMALL_PRODUCT {
        // Cut the larger operand: rows of `a` and `c`, or columns of `b` and
        // `c`, which are the rows of the transposed product `cᵀ = bᵀ·aᵀ`.
        let cut = if m >= n {
            in_row_pieces(a, b, beta, c.view_mut())
        } else {
            in_row_pieces(b.t(), a.t(), beta, c.view_mut().reversed_axes())
        };
        if cut {
            return;
        }
    }
    ndarray::linalg::general_mat_mul(F::one(), &a, &b, beta, c);
}

/// `c = a·b + β·c` as products of whole rows, each below [`THREADED_SIZE`], so
/// that matrixmultiply runs every one on the calling thread; `false` (and
/// nothing computed) when a single row of `a` with all of `b` is already too
/// large.
#[cfg(not(feature = "blas"))]
fn in_row_pieces<F: Float>(
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    beta: F,
    mut c: ndarray::ArrayViewMut2<F>,
) -> bool {
    let (m, k) = a.dim();
    let n = b.ncols();
    let limit = THREADED_SIZE - 1;
    if k * n + k > limit {
        return false;
    }
    let rows = (limit - k * n) / k;
    for start in (0..m).step_by(rows) {
        let end = (start + rows).min(m);
        let a_rows = a.slice(ndarray::s![start..end, ..]);
        let mut c_rows = c.slice_mut(ndarray::s![start..end, ..]);
        ndarray::linalg::general_mat_mul(F::one(), &a_rows, &b, beta, &mut c_rows);
    }
    true
}

/// matrixmultiply splits a product across up to `MATMUL_NUM_THREADS` threads
/// (at most 4, one per 2¹⁴ of `m·k + k·n`) once `m·k + k·n` reaches this on
/// x86-64 and aarch64 (on 32-bit ARM its threshold is lower and the cut below
/// does not keep products on one thread), however little work they hold.
#[cfg(not(feature = "blas"))]
const THREADED_SIZE: usize = 1 << 15;

/// Products of fewer multiply-adds than this are cut, in [`matmul_into`], into
/// pieces of whole rows or columns of the result each below [`THREADED_SIZE`],
/// so that they run on the calling thread: waking a second thread costs more
/// than it saves on them (one minibatch at (256, 10, 128): 54 µs on one
/// thread, 73 µs on two without the cut). A product whose pieces cannot get
/// below [`THREADED_SIZE`] is left whole.
/// Each element of the result is still summed in the same order, so results
/// do not depend on the cut.
#[cfg(not(feature = "blas"))]
const SMALL_PRODUCT: usize = 1 << 21;

/// `a` as a faer matrix, when its elements are contiguous in row- or column-major order.
fn faer_view<'a, F: Float>(a: &ArrayView2<'a, F>) -> Option<faer::MatRef<'a, F>> {
    let (rows, cols) = a.dim();
    if let Some(row_major) = a.to_slice() {
        return Some(faer::MatRef::from_row_major_slice(row_major, rows, cols));
    }
    let column_major = (*a).reversed_axes().to_slice()?;
    Some(faer::MatRef::from_column_major_slice(
        column_major,
        rows,
        cols,
    ))
}

/// `y = x·wᵀ` (or `y += x·wᵀ`) for `x: (n, k)`, `w: (m, k)`: [`matmul_into`]
/// with `wᵀ`.
///
/// # Panics
///
/// If the shapes disagree.
pub fn times_transposed<F: Float>(
    x: ArrayView2<F>,
    w: ArrayView2<F>,
    accumulate: bool,
    y: &mut Array2<F>,
) {
    matmul_into(x, w.t(), accumulate, y);
}

/// One minibatch of training: forward, loss and its gradient, backward, one
/// optimiser update with learning rate `lr`. Returns the batch's loss.
///
/// `x: (n_batch, n_in)`; `row_weights`, when given, weights each sample's loss
/// (see [`weight_rows`]). This is the whole inner loop of a training step, so
/// the benchmarks time exactly what the learner runs.
///
/// # Panics
///
/// If the shapes of `x`, `targets`, `row_weights` and the optimiser disagree
/// with the head (internal invariants: the learner builds all of them).
pub fn train_step<F: Float>(
    head: &mut Head<F>,
    optimizer: &mut Optimizer<F>,
    loss: &LossKind,
    x: ArrayView2<F>,
    targets: &Targets<F>,
    row_weights: Option<&[F]>,
    lr: f32,
) -> F {
    let forward = head.forward_cached(x);
    let (value, mut d_logits) = loss_and_grad(loss, forward.logits.view(), targets);
    if let Some(w) = row_weights {
        weight_rows(&mut d_logits, w);
    }
    let grads = head.backward(&forward, d_logits.view());
    optimizer.step(head, &grads, lr);
    value
}

/// Init bound for output rows: `1/√fan_in`.
fn output_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

fn relu<F: NdFloat>(v: F) -> F {
    if v > F::zero() { v } else { F::zero() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn linear_forward_matches_hand_computation() {
        // y = x·wᵀ + b with x = [1, 2], w = [[1, 0], [2, -1]], b = [0.5, -1]:
        // y0 = 1·1 + 2·0 + 0.5 = 1.5; y1 = 1·2 + 2·(−1) − 1 = −1.
        let layer = Linear {
            w: array![[1.0, 0.0], [2.0, -1.0]],
            b: array![0.5, -1.0],
        };
        let y = layer.forward(array![[1.0, 2.0]].view());
        assert_eq!(y, array![[1.5, -1.0]]);
    }

    #[test]
    fn grow_keeps_old_weights_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut head = Head::<f32>::new(5, &[4], 2, &mut rng);
        let before = head.clone();
        head.grow(3, &mut rng);
        assert_eq!(head.n_classes(), 5);
        assert_eq!(head.hidden, before.hidden);
        for (new, old) in head.output.w.rows().into_iter().zip(before.output.w.rows()) {
            let new: Vec<u32> = new.iter().map(|v| v.to_bits()).collect();
            let old: Vec<u32> = old.iter().map(|v| v.to_bits()).collect();
            assert_eq!(new, old);
        }
        assert_eq!(head.output.b.slice(s![..2]), before.output.b);
        assert!(head.output.w.slice(s![2.., ..]).iter().any(|&v| v != 0.0));
    }

    #[test]
    fn grow_from_zero_classes_and_seeded_init_repeats() {
        let make = || {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let mut head = Head::<f64>::new(3, &[], 0, &mut rng);
            head.grow(2, &mut rng);
            head
        };
        let (a, b) = (make(), make());
        assert_eq!(a, b);
        assert_eq!(a.output.w.dim(), (2, 3));
        let logits = a.forward(array![[1.0, 2.0, 3.0]].view());
        assert_eq!(logits.dim(), (1, 2));
    }

    #[test]
    fn representation_is_x_for_a_linear_head() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let head = Head::<f64>::new(3, &[], 2, &mut rng);
        let x = array![[1.0, -2.0, 3.0]];
        assert_eq!(head.represent(x.view()), x);
        let deep = Head::<f64>::new(3, &[4], 2, &mut rng);
        let phi = deep.represent(x.view());
        assert_eq!(phi.dim(), (1, 4));
        assert!(phi.iter().all(|&v| v >= 0.0));
    }
}
