//! Loss values and gradients pinned against PyTorch
//! (`tests/data/make_loss_fixture.py` → `tests/data/loss_reference.json`).

use continual::LossKind;
use continual::loss::{Targets, loss_and_grad};
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    kind: String,
    lambda: f64,
    temperature: f64,
    logits: Vec<Vec<f64>>,
    labels: Vec<usize>,
    distill: Vec<usize>,
    prev_logits: Vec<Vec<f64>>,
    loss: f64,
    grad: Vec<Vec<f64>>,
}

fn matrix(rows: &[Vec<f64>], n_cols: usize) -> Array2<f64> {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Array2::from_shape_vec((rows.len(), n_cols), flat).expect("rectangular fixture matrix")
}

#[test]
fn losses_match_pytorch() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/loss_reference.json"
    ))
    .expect("fixture present");
    let fixture: Fixture = serde_json::from_str(&text).expect("fixture parses");
    assert_eq!(fixture.cases.len(), 10);

    for (k, case) in fixture.cases.iter().enumerate() {
        let t = case.logits[0].len();
        let logits = matrix(&case.logits, t);
        let prev = matrix(&case.prev_logits, case.distill.len());
        let kind = match case.kind.as_str() {
            "bce" => LossKind::Bce {
                lambda: case.lambda as f32,
            },
            _ => LossKind::Softmax {
                lambda: case.lambda as f32,
                temperature: case.temperature as f32,
            },
        };
        let targets = Targets {
            labels: &case.labels,
            distill: &case.distill,
            prev_logits: prev.view(),
        };
        let (loss, grad) = loss_and_grad(&kind, logits.view(), &targets);

        // λ and τ pass through f32 in LossKind; the fixture's values (0.5, 1, 2, 3)
        // are exact in f32, so f64 agreement to 1e-12 is expected.
        assert!(
            (loss - case.loss).abs() <= 1e-12 * case.loss.abs().max(1.0),
            "case {k} ({}): loss {loss} vs torch {}",
            case.kind,
            case.loss
        );
        let want = matrix(&case.grad, t);
        for (g, w) in grad.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-12,
                "case {k}: grad {grad} vs torch {want}"
            );
        }
    }
}
