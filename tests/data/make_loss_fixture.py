"""Reference values for `continual`'s losses, computed independently with PyTorch.

Writes tests/data/loss_reference.json; read by tests/loss_reference.rs.
Run from the repository root: python3 tests/data/make_loss_fixture.py

BCE variant:   mean over the batch of sum_y w_y * BCE(z_y, T_y), with T = q = sigmoid(prev)
               on distilled columns, one-hot of the label elsewhere; w = lambda on
               distilled columns, 1 elsewhere (torch.binary_cross_entropy_with_logits).
Softmax variant: cross_entropy(z, label) + lambda * tau^2 * cross_entropy(z[:, distill] / tau,
               softmax(prev / tau)) with soft targets, both batch means (torch.cross_entropy).
Gradients with respect to the logits come from autograd.
"""

import json

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def bce_case(rng, n, t, n_old, lam, scale):
    logits = rng.normal(0.0, scale, size=(n, t))
    distill = sorted(rng.choice(n_old, size=rng.integers(0, n_old + 1), replace=False).tolist())
    step = [c for c in range(t) if c not in distill]
    labels = [int(rng.choice(range(t))) for _ in range(n)]
    prev = rng.normal(0.0, scale, size=(n, len(distill)))

    z = torch.tensor(logits, requires_grad=True)
    target = torch.zeros(n, t)
    for i, y in enumerate(labels):
        target[i, y] = 1.0
    weight = torch.ones(t)
    for j, c in enumerate(distill):
        target[:, c] = torch.sigmoid(torch.tensor(prev[:, j]))
        weight[c] = lam
    loss = F.binary_cross_entropy_with_logits(z, target, weight=weight.expand(n, t), reduction="sum") / n
    loss.backward()
    return dict(kind="bce", lambda_=lam, temperature=1.0, logits=logits.tolist(), labels=labels,
                distill=distill, prev_logits=prev.tolist(), loss=loss.item(), grad=z.grad.tolist(),
                step=step)


def softmax_case(rng, n, t, n_old, lam, tau, scale):
    logits = rng.normal(0.0, scale, size=(n, t))
    distill = sorted(rng.choice(n_old, size=rng.integers(0, n_old + 1), replace=False).tolist())
    labels = [int(rng.choice(range(t))) for _ in range(n)]
    prev = rng.normal(0.0, scale, size=(n, len(distill)))

    z = torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, torch.tensor(labels))
    if distill:
        soft = torch.softmax(torch.tensor(prev) / tau, dim=1)
        loss = loss + lam * tau * tau * F.cross_entropy(z[:, distill] / tau, soft)
    loss.backward()
    return dict(kind="softmax", lambda_=lam, temperature=tau, logits=logits.tolist(), labels=labels,
                distill=distill, prev_logits=prev.tolist(), loss=loss.item(), grad=z.grad.tolist())


def main():
    rng = np.random.default_rng(20260101)
    cases = []
    for n, t, n_old, lam, scale in [(1, 2, 1, 1.0, 1.0), (5, 4, 2, 1.0, 2.0), (8, 6, 4, 0.5, 3.0),
                                    (4, 3, 3, 2.0, 10.0), (6, 5, 0, 1.0, 1.0)]:
        cases.append(bce_case(rng, n, t, n_old, lam, scale))
    for n, t, n_old, lam, tau, scale in [(1, 3, 2, 1.0, 2.0, 1.0), (5, 4, 2, 1.0, 2.0, 2.0),
                                         (7, 6, 4, 0.5, 3.0, 3.0), (4, 5, 5, 2.0, 1.0, 10.0),
                                         (3, 3, 0, 1.0, 2.0, 1.0)]:
        cases.append(softmax_case(rng, n, t, n_old, lam, tau, scale))
    for c in cases:
        c["lambda"] = c.pop("lambda_")
        c.pop("step", None)
    with open("tests/data/loss_reference.json", "w") as f:
        json.dump({"generator": "tests/data/make_loss_fixture.py", "torch": torch.__version__,
                   "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
