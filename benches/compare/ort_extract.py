#!/usr/bin/env python3
"""Inference with the bundled model in Python onnxruntime: images per second at
batch 1 and 64 on the same 256 preprocessed Fashion-MNIST test images, the same
work as `cargo bench --bench extract` (group extract, "tensor").

    python3 benches/compare/ort_extract.py --threads 1

Uses the same session settings as the Rust extractor: onnxruntime's defaults
(all graph optimisations, sequential execution) with `intra_op_num_threads`
set to --threads. Prints one JSON object: seconds per 256 images (median of
repeats) per batch size.
"""

import argparse
import gzip
import json
import pathlib
import statistics
import time

import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parents[2]
N = 256


def images():
    """The first N bundled test images, normalised as models/fashion-vgg.json says."""
    spec = json.loads((ROOT / "models/fashion-vgg.json").read_text())
    raw = gzip.decompress((ROOT / "data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz").read_bytes())
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)[: N * 28 * 28].reshape(N, 1, 28, 28)
    x = (pixels.astype(np.float32) / spec["scale"] - spec["mean"][0]) / spec["std"][0]
    return np.ascontiguousarray(x, dtype=np.float32)


def median_seconds(fn, min_time=4.0, repeats=10):
    for _ in range(3):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(ROOT / "models/fashion-vgg.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = images()
    out = {"onnxruntime": ort.__version__, "threads": args.threads, "images": N, "seconds": {}}
    for batch in (1, 64):
        def run():
            for i in range(0, N, batch):
                session.run(None, {name: x[i : i + batch]})
        out["seconds"][f"batch{batch}"] = median_seconds(run)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
