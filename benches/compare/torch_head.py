#!/usr/bin/env python3
"""One minibatch of head training in PyTorch on the CPU, the same work as
`cargo bench --bench head` (group head_train_step): Linear heads with and
without one hidden layer of 512, the iCaRL BCE loss with the lower half of the
outputs distilled against stored previous logits and a weight per sample, SGD
with momentum 0.9 and weight decay 1e-5.

Also the rate of one large square sgemm (torch.mm), the machine's reference.

    python3 benches/compare/torch_head.py --threads 1 > torch-1.json

Prints one JSON object: seconds per minibatch (median of repeats) per case.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

SIZES = [(256, 10, 128), (4096, 100, 128), (4096, 1000, 128)]
HIDDEN = {"linear": [], "hidden512": [512]}


def head(dim, hidden, classes):
    layers, width = [], dim
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, classes))
    return torch.nn.Sequential(*layers)


def median_seconds(fn, min_time=2.0, repeats=5):
    """Median over `repeats` of the mean time of `fn` in a loop of ≥ min_time / repeats."""
    for _ in range(10):
        fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 0.2:
        fn()
        n += 1
    per = max(1, int(n * (min_time / repeats) / 0.2))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per):
            fn()
        samples.append((time.perf_counter() - start) / per)
    return statistics.median(samples)


def train_case(dim, classes, batch, hidden):
    torch.manual_seed(0)
    model = head(dim, hidden, classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    x = torch.randn(batch, dim)
    n_old = classes // 2
    labels = torch.tensor([n_old + i % (classes - n_old) for i in range(batch)])
    prev = torch.randn(batch, n_old)
    row_weights = torch.ones(batch)
    col_weights = torch.ones(classes)

    def step():
        logits = model(x)
        with torch.no_grad():
            targets = F.one_hot(labels, classes).to(logits.dtype)
            targets[:, :n_old] = torch.sigmoid(prev)
        per_elem = F.binary_cross_entropy_with_logits(logits, targets, weight=col_weights, reduction="none")
        loss = (per_elem.sum(dim=1) * row_weights).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return median_seconds(step)


def sgemm(n=1024):
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median_seconds(lambda: torch.mm(a, b))
    return 2 * n**3 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    out = {
        "torch": torch.__version__,
        "threads": args.threads,
        "sgemm_1024_gflops": sgemm(),
        "head_train_step": {},
    }
    for dim, classes, batch in SIZES:
        for name, hidden in HIDDEN.items():
            key = f"{name}/{dim}x{classes}x{batch}"
            out["head_train_step"][key] = train_case(dim, classes, batch, hidden)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
