#!/usr/bin/env python3
"""The tables of benches/README.md from one run of benches/compare/run.sh:
Criterion's medians (saved baselines threads1, threads2, blas-threads1,
blas-threads2, default, and threads{1,2}-rep{i} for the comparisons, whose
processes ran in turns with the scripts') and the JSON the comparison scripts
printed.

    python3 benches/compare/report.py target/bench-results target/criterion

A cell is "–" where that measurement is missing from the run.
"""

import json
import pathlib
import re
import sys

SIZES = [(256, 10, 128), (4096, 100, 128), (4096, 1000, 128)]
HIDDEN = {"linear": [], "hidden512": [512]}
THREADS = (1, 2)
N_IMAGES = 256


def flops(dim, hidden, classes, batch):
    """FLOPs of one training minibatch's matrix products: per layer 2·b·i·o
    forward and for d_w, plus the input gradient of every layer but the first."""
    widths = [dim, *hidden, classes]
    total = 0
    for layer, (i, o) in enumerate(zip(widths, widths[1:])):
        total += (2 if layer == 0 else 3) * 2 * batch * i * o
    return total


def fmt_time(s):
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def ratio(num, den):
    return num / den if num and den else None


def fmt_ratio(r, digits=2):
    return f"{r:.{digits}f}×" if r is not None else "–"


class Results:
    def __init__(self, results, criterion):
        self.results = pathlib.Path(results)
        self.criterion = pathlib.Path(criterion)

    def median(self, bench, baseline):
        """Median seconds of a Criterion benchmark id (group/function[/value])."""
        path = self.criterion / bench / baseline / "estimates.json"
        if not path.exists():
            return None
        return json.loads(path.read_text())["median"]["point_estimate"] / 1e9

    def load(self, name):
        path = self.results / name
        return json.loads(path.read_text()) if path.exists() else None


def reps_of(r, pattern):
    """The repetition numbers of the comparison files matching pattern (a glob
    ending in `-rep*.json`)."""
    found = (re.fullmatch(r".*-rep(\d+)", p.stem) for p in r.results.glob(pattern))
    return sorted({int(m.group(1)) for m in found if m})


def head_training(r, targets):
    print("## Head training, one minibatch (continual vs PyTorch)\n")
    reps = reps_of(r, "torch-threads*-rep*.json")
    print(f"continual and PyTorch ran in {len(reps)} processes each per thread count, in "
          "turns; each time is the median over them. The `--features blas` column and "
          "the sgemm rates of matrixmultiply and OpenBLAS are from one process each.\n")
    single_core = r.median("sgemm/square/1024x1024x1024", "threads1")
    for t in THREADS:
        torch_runs = [r.load(f"torch-threads{t}-rep{i}.json") for i in reps]
        torch_runs = [run for run in torch_runs if run]
        own_sgemm = r.median("sgemm/square/1024x1024x1024", f"threads{t}")
        blas_sgemm = r.median("sgemm/square/1024x1024x1024", f"blas-threads{t}")
        print(f"### {t} thread{'s' if t > 1 else ''}\n")
        rates = []
        if own_sgemm:
            rates.append(f"matrixmultiply {2 * 1024**3 / own_sgemm / 1e9:.0f}")
        if blas_sgemm:
            rates.append(f"OpenBLAS {2 * 1024**3 / blas_sgemm / 1e9:.0f}")
        if torch_runs:
            gflops = median_of([run["sgemm_1024_gflops"] for run in torch_runs])
            rates.append(f"PyTorch {gflops:.0f}")
            print(f"PyTorch {torch_runs[0]['torch']}.", end=" ")
        print(f"Square 1024³ sgemm, GFLOP/s: {', '.join(rates)}.\n")
        print("| (d, classes, batch) | head | continual | PyTorch | speed-up | GFLOP/s "
              "| of single-core sgemm | with `--features blas` |")
        print("|---|---|---|---|---|---|---|---|")
        for d, c, b in SIZES:
            for name, hidden in HIDDEN.items():
                key = f"{name}/{d}x{c}x{b}"
                ours = median_of([r.median(f"head_train_step/{key}", f"threads{t}-rep{i}")
                                  for i in reps])
                blas = r.median(f"head_train_step/{key}", f"blas-threads{t}")
                theirs = median_of([run["head_train_step"][key] for run in torch_runs])
                speedup = ratio(theirs, ours)
                gflops = flops(d, hidden, c, b) / ours / 1e9 if ours else None
                of_core = (f"{100 * gflops / (2 * 1024**3 / single_core / 1e9):.0f} %"
                           if gflops and single_core else "–")
                print(f"| ({d}, {c}, {b}) | {name} | {fmt_time(ours)} | {fmt_time(theirs)} "
                      f"| {fmt_ratio(speedup)} | {f'{gflops:.0f}' if gflops else '–'} "
                      f"| {of_core} | {fmt_time(blas)} |")
                if name == "linear" and (d, c, b) == (256, 10, 128):
                    targets.append((f"head training (256, 10, 128), {t} thread(s), vs PyTorch",
                                    "≥ 5×", speedup, speedup is not None and speedup >= 5))
                if name == "linear" and (d, c, b) == (4096, 100, 128):
                    targets.append((f"head training (4096, 100, 128), {t} thread(s), vs PyTorch",
                                    "≥ 1×", speedup, speedup is not None and speedup >= 1))
        print()
    print("### The products of one (4096, 100, 128) linear minibatch\n")
    print("| product | (m, k, n) | 1 thread | 2 threads | OpenBLAS, 1 thread | OpenBLAS, 2 threads |")
    print("|---|---|---|---|---|---|")
    for name, (m, k, n) in [("square", (1024, 1024, 1024)), ("forward", (128, 4096, 100)),
                            ("weight_grad", (100, 128, 4096))]:
        cells = []
        for base in ("threads1", "threads2", "blas-threads1", "blas-threads2"):
            s = r.median(f"sgemm/{name}/{m}x{k}x{n}", base)
            cells.append(f"{fmt_time(s)} ({2 * m * k * n / s / 1e9:.0f} GFLOP/s)" if s else "–")
        print(f"| {name} | ({m}, {k}, {n}) | {' | '.join(cells)} |")
    print()


def median_of(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def extraction(r, targets):
    print("## Extraction, 256 images through the bundled model (continual vs Python onnxruntime)\n")
    reps = reps_of(r, "ort-threads*-rep*.json")
    print(f"Each side ran in {len(reps)} processes, in turns; the rates are the median over "
          "them (each process's own figure is Criterion's median, or the script's), "
          "and the range is the slowest and the fastest process.\n")
    print("| threads | batch | continual, tensors | onnxruntime (Python) | continual / onnxruntime "
          "| continual, PNG files | files / tensors |")
    print("|---|---|---|---|---|---|---|")
    rate = lambda s: f"{N_IMAGES / s:,.0f}" if s else "–"

    def cell(values):
        values = [v for v in values if v is not None]
        if not values:
            return "–"
        return f"{rate(median_of(values))} img/s ({rate(max(values))}–{rate(min(values))})"

    for t in THREADS:
        for batch in (1, 64):
            tensor = [r.median(f"extract/tensor/batch{batch}", f"threads{t}-rep{i}") for i in reps]
            files = [r.median(f"extract/files/batch{batch}", f"threads{t}-rep{i}") for i in reps]
            theirs = []
            for i in reps:
                ort = r.load(f"ort-threads{t}-rep{i}.json")
                theirs.append(ort["seconds"][f"batch{batch}"] if ort else None)
            vs_ort = ratio(median_of(theirs), median_of(tensor))
            overlap = ratio(median_of(tensor), median_of(files))
            print(f"| {t} | {batch} | {cell(tensor)} | {cell(theirs)} | {fmt_ratio(vs_ort)} "
                  f"| {cell(files)} | {fmt_ratio(overlap)} |")
            targets.append((f"extraction, batch {batch}, {t} thread(s), vs Python onnxruntime",
                            "≥ 0.97×", vs_ort, vs_ort is not None and vs_ort >= 0.97))
            targets.append((f"extraction from PNG files, batch {batch}, {t} thread(s), vs tensors",
                            "≥ 0.85×", overlap, overlap is not None and overlap >= 0.85))
    print()


def learner(r, targets):
    print("## Learner\n")
    print("| operation | 1 thread | 2 threads |")
    print("|---|---|---|")
    rows = [("one step: 10 new classes × 500 onto 50, memory 2000, d 256, hidden 512, 20 epochs",
             "learner_step/icarl_d256_50+10_classes_memory2000", 1)]
    for head in ("hidden512", "linear"):
        for classes in (100, 1000):
            for clf in ("nme", "head"):
                for batch in (1, 1000):
                    rows.append((f"predict, {head}, {clf}, {classes} classes, batch {batch}, per sample",
                                 f"predict/{clf}_{head}_{classes}_classes/batch{batch}", batch))
    for d in (256, 512):
        for m in (200, 2000):
            rows.append((f"herding {m} of 6000, d {d}", f"herding_6000/d{d}/m{m}", 1))
    for op in ("save", "load", "decode_from_memory"):
        rows.append((f"state, memory 2000, d 4096, hidden 512: {op}",
                     f"state_memory2000_d4096/{op}", 1))
    for name, n_out, n_in in (("hidden", 512, 256), ("output", 100, 512)):
        rows.append((f"one row × `wᵀ`, w {n_out}×{n_in} ({n_out * n_in * 4 // 1024} KiB)",
                     f"gemv/{name}/{n_out}x{n_in}", 1))
    for label, bench, per in rows:
        cells = []
        for t in THREADS:
            s = r.median(bench, f"threads{t}")
            cells.append(fmt_time(s / per) if s else "–")
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    print()

    for head in ("hidden512", "linear"):
        for clf in ("nme", "head"):
            s = r.median(f"predict/{clf}_{head}_100_classes/batch1", "threads1")
            us = s * 1e6 if s else None
            targets.append((f"predict one sample, {clf}, d 256, {head}, 100 classes",
                            "≤ 10 µs", f"{us:.1f} µs" if us else None, us is not None and us <= 10))
    s = r.median("state_memory2000_d4096/load", "threads1")
    ms = s * 1e3 if s else None
    targets.append(("load a memory-2000, d-4096 state", "≤ 50 ms",
                    f"{ms:.1f} ms" if ms else None, ms is not None and ms <= 50))


def statistics(r):
    print("## Statistics learners (default threads)\n")
    print("| operation | d 256, 6,000 samples | d 4096, 1,000 samples |")
    print("|---|---|---|")
    for kind in ("slda", "ridge", "ncm"):
        print(f"| {kind} update | {fmt_time(r.median(f'stats_update/{kind}/256', 'default'))} | "
              f"{fmt_time(r.median(f'stats_update/{kind}/4096', 'default'))} |")
    print(f"| slda scores, 1,000 samples | {fmt_time(r.median('stats_scores/slda/256', 'default'))} | "
          f"{fmt_time(r.median('stats_scores/slda/4096', 'default'))} |")
    print()


def main():
    r = Results(sys.argv[1], sys.argv[2])
    targets = []
    head_training(r, targets)
    extraction(r, targets)
    learner(r, targets)
    statistics(r)
    print("## Targets\n")
    print("| target | wanted | measured | met |")
    print("|---|---|---|---|")
    for name, wanted, measured, met in targets:
        shown = fmt_ratio(measured) if isinstance(measured, float) else (measured or "–")
        print(f"| {name} | {wanted} | {shown} | {'yes' if met else '**no**'} |")


if __name__ == "__main__":
    main()
