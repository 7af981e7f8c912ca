//! Herding selection (Welling 2009, as used by iCaRL): a priority order of
//! samples whose running mean of normalised `φ` tracks the class mean.

use ndarray::{Array1, ArrayView2, Axis};

/// Picks up to `m` rows of `phi: (n, n_repr)` by herding and returns their
/// indices in priority order (no index twice; length `min(m, n)`).
///
/// With `u_i = φ_i / ‖φ_i‖` and the class mean `μ = mean_i u_i`, step `k`
/// (1-based) picks the unchosen `i` minimising
/// `‖μ − (u_i + Σ_{j<k} u_{p_j}) / k‖`, so every prefix of the order is the
/// greedy best approximation of `μ` of its length; shrinking a class keeps a
/// prefix. Ties go to the lowest index, so the order is deterministic. Work is
/// done in `f64`: the comparisons decide which samples are kept.
pub fn herding(phi: ArrayView2<f32>, m: usize) -> Vec<usize> {
    let n = phi.nrows();
    let m = m.min(n);
    let mut unit = phi.mapv(f64::from);
    for mut row in unit.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
    let Some(mu) = unit.mean_axis(Axis(0)) else {
        return Vec::new();
    };
    let sq_norms: Array1<f64> = unit.map_axis(Axis(1), |r| r.dot(&r));

    let mut chosen = Vec::with_capacity(m);
    let mut taken = vec![false; n];
    let mut sum = Array1::<f64>::zeros(unit.ncols());
    for k in 1..=m {
        // ‖μ − (u_i + s)/k‖² = ‖k·μ − s − u_i‖² / k², so minimise
        // ‖r − u_i‖² = ‖r‖² − 2·r·u_i + ‖u_i‖² with r = k·μ − s; ‖r‖² is common.
        let r = &mu * k as f64 - &sum;
        let dots = unit.dot(&r);
        let mut best: Option<(usize, f64)> = None;
        for i in 0..n {
            if taken[i] {
                continue;
            }
            let d = sq_norms[i] - 2.0 * dots[i];
            if best.is_none_or(|(_, b)| d < b) {
                best = Some((i, d));
            }
        }
        let (i, _) = best.expect("k ≤ n leaves an unchosen sample");
        taken[i] = true;
        sum += &unit.row(i);
        chosen.push(i);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hand_placed_2d_example() {
        // Raw points a = (2, 0), b = (0, 1), c = (4, 3); normalised:
        // a = (1, 0), b = (0, 1), c = (0.8, 0.6). μ = (1.8/3, 1.6/3) = (0.6, 0.5333).
        // k = 1: ‖μ − a‖² = 0.16 + 0.2844 = 0.4444, ‖μ − b‖² = 0.36 + 0.2178 = 0.5778,
        //        ‖μ − c‖² = 0.04 + 0.0044 = 0.0444 → c.
        // k = 2: (c + a)/2 = (0.9, 0.3) → ‖μ − ·‖² = 0.09 + 0.0544 = 0.1444;
        //        (c + b)/2 = (0.4, 0.8) → 0.04 + 0.0711 = 0.1111 → b,
        //        although a alone is closer to μ than b (herding ≠ sorting by distance).
        // k = 3: a. Order [c, b, a] = [2, 1, 0].
        let phi = array![[2.0f32, 0.0], [0.0, 1.0], [4.0, 3.0]];
        assert_eq!(herding(phi.view(), 3), vec![2, 1, 0]);
        assert_eq!(herding(phi.view(), 2), vec![2, 1]);
        assert_eq!(herding(phi.view(), 10), vec![2, 1, 0]);
        assert!(herding(phi.view(), 0).is_empty());
    }

    #[test]
    fn duplicates_are_never_chosen_twice() {
        let phi = array![[1.0f32, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let order = herding(phi.view(), 4);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
    }

    proptest::proptest! {
        /// Any budget's order is a prefix of a larger budget's, and no index repeats.
        #[test]
        fn orders_are_prefixes_without_repeats(
            values in proptest::collection::vec(-5.0f32..5.0, 3 * 12),
            m in 0usize..12,
        ) {
            let phi = ndarray::Array2::from_shape_vec((12, 3), values).expect("12 × 3");
            let full = herding(phi.view(), 12);
            let part = herding(phi.view(), m);
            proptest::prop_assert_eq!(&full[..m], &part[..]);
            let mut sorted = full.clone();
            sorted.sort_unstable();
            proptest::prop_assert_eq!(sorted, (0..12).collect::<Vec<_>>());
        }
    }

    #[test]
    fn empty_input_gives_empty_order() {
        let phi = ndarray::Array2::<f32>::zeros((0, 3));
        assert!(herding(phi.view(), 5).is_empty());
    }
}
