#!/usr/bin/env python3
"""The tables of benches/README.md from one run of benches/compare/run.sh:
Criterion's medians (saved baselines threads1, threads2, blas-threads1,
blas-threads2, default) and the JSON the comparison scripts printed.

    python3 benches/compare/report.py target/bench-results target/criterion
"""

import json
import pathlib
import sys

SIZES = [(256, 10, 128), (4096, 100, 128), (4096, 1000, 128)]
HIDDEN = {"linear": [], "hidden512": [512]}


def flops(dim, hidden, classes, batch):
    """FLOPs of one training minibatch's matrix products: per layer 2·b·i·o
    forward and for d_w, plus the input gradient of every layer but the first."""
    widths = [dim, *hidden, classes]
    total = 0
    for layer, (i, o) in enumerate(zip(widths, widths[1:])):
        total += (2 if layer == 0 else 3) * 2 * batch * i * o
    return total


def main():
    results = pathlib.Path(sys.argv[1])
    criterion = pathlib.Path(sys.argv[2])

    def median(bench, baseline):
        """Median seconds of a Criterion benchmark id (group/function[/value])."""
        path = criterion / bench / baseline / "estimates.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())["median"]["point_estimate"] / 1e9

    def load(name):
        path = results / name
        return json.loads(path.read_text()) if path.exists() else None

    def fmt_time(s):
        if s is None:
            return "–"
        if s < 1e-3:
            return f"{s * 1e6:.1f} µs"
        if s < 1:
            return f"{s * 1e3:.2f} ms"
        return f"{s:.2f} s"

    print("## Head training, one minibatch (continual vs PyTorch)\n")
    for t in (1, 2):
        torch = load(f"torch-threads{t}.json")
        own_sgemm = median("sgemm/square/1024x1024x1024", f"threads{t}")
        print(f"### {t} thread{'s' if t > 1 else ''}\n")
        if torch:
            print(f"PyTorch {torch['torch']}; square 1024³ sgemm: PyTorch {torch['sgemm_1024_gflops']:.0f} GFLOP/s, "
                  f"continual's backend (matrixmultiply) {2 * 1024**3 / own_sgemm / 1e9:.0f} GFLOP/s.\n")
        print("| (d, classes, batch) | head | continual | PyTorch | speed-up | continual GFLOP/s | OpenBLAS build |")
        print("|---|---|---|---|---|---|---|")
        for d, c, b in SIZES:
            for name, hidden in HIDDEN.items():
                key = f"{name}/{d}x{c}x{b}"
                ours = median(f"head_train_step/{key}", f"threads{t}")
                blas = median(f"head_train_step/{key}", f"blas-threads{t}")
                theirs = torch["head_train_step"][key] if torch else None
                ratio = f"{theirs / ours:.2f}×" if ours and theirs else "–"
                gflops = f"{flops(d, hidden, c, b) / ours / 1e9:.0f}" if ours else "–"
                print(f"| ({d}, {c}, {b}) | {name} | {fmt_time(ours)} | {fmt_time(theirs)} | {ratio} | {gflops} | {fmt_time(blas)} |")
        print()

    print("## Extraction, 256 images of the bundled model (continual vs Python onnxruntime)\n")
    print("| threads | batch | continual, tensors | onnxruntime (Python) | ratio | continual, PNG files | files / tensors |")
    print("|---|---|---|---|---|---|---|")
    for t in (1, 2):
        ort = load(f"ort-threads{t}.json")
        for batch in (1, 64):
            tensor = median(f"extract/tensor/batch{batch}", f"threads{t}")
            files = median(f"extract/files/batch{batch}", f"threads{t}")
            theirs = ort["seconds"][f"batch{batch}"] if ort else None
            rate = lambda s: f"{256 / s:,.0f} img/s" if s else "–"
            ratio = f"{theirs / tensor:.2f}×" if tensor and theirs else "–"
            overlap = f"{tensor / files:.2f}" if tensor and files else "–"
            print(f"| {t} | {batch} | {rate(tensor)} | {rate(theirs)} | {ratio} | {rate(files)} | {overlap} |")
    print()

    print("## Learner\n")
    print("| operation | 1 thread | 2 threads |")
    print("|---|---|---|")
    rows = [
        ("one step: 10 new classes × 500 onto 50, memory 2000, d 256, 20 epochs", "learner_step/icarl_d256_50+10_classes_memory2000", 1),
    ]
    for classes in (100, 1000):
        for clf in ("nme", "head"):
            rows.append((f"predict, {clf}, {classes} classes, batch 1 (per sample)", f"predict/{clf}_{classes}_classes/batch1", 1))
            rows.append((f"predict, {clf}, {classes} classes, batch 1000 (per sample)", f"predict/{clf}_{classes}_classes/batch1000", 1000))
    for d in (256, 512):
        for m in (200, 2000):
            rows.append((f"herding {m} of 6000, d {d}", f"herding_6000/d{d}/m{m}", 1))
    for op in ("save", "load", "decode_from_memory"):
        rows.append((f"state, memory 2000, d 4096: {op}", f"state_memory2000_d4096/{op}", 1))
    for label, bench, per in rows:
        cells = []
        for t in (1, 2):
            s = median(bench, f"threads{t}")
            cells.append(fmt_time(s / per) if s else "–")
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    print()

    print("## Statistics learners (default threads)\n")
    print("| operation | d 256, 6,000 samples | d 4096, 1,000 samples |")
    print("|---|---|---|")
    for kind in ("slda", "ridge", "ncm"):
        print(f"| {kind} update | {fmt_time(median(f'stats_update/{kind}/256', 'default'))} | "
              f"{fmt_time(median(f'stats_update/{kind}/4096', 'default'))} |")
    print(f"| slda scores, 1,000 samples | {fmt_time(median('stats_scores/slda/256', 'default'))} | "
          f"{fmt_time(median('stats_scores/slda/4096', 'default'))} |")


if __name__ == "__main__":
    main()
