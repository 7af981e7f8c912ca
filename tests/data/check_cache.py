#!/usr/bin/env python3
"""Check that numpy reads a feature cache written by `continual` (run by hand).

    cargo run --release --example extract_cache -- data/fashion-mnist-subset /tmp/subset.npz
    python3 tests/data/check_cache.py /tmp/subset.npz [tests/data/reference/subset_test_first64_features.npy]

With a reference .npy of the first 64 test images' features, also compares them.
"""

import json
import sys

import numpy as np


def main():
    z = np.load(sys.argv[1])
    features, labels, split = z["features"], z["labels"], z["split"]
    meta = json.loads(bytes(z["meta"]))
    n, d = features.shape
    assert features.dtype == np.float32 and labels.dtype == np.int64 and split.dtype == np.uint8
    assert labels.shape == (n,) and split.shape == (n,)
    assert meta["format"] == "continual-features-v1", meta["format"]
    assert len(meta["paths"]) in (0, n)
    assert labels.min() >= 0 and labels.max() < len(meta["class_names"])
    assert np.isfinite(features).all()
    print(f"{sys.argv[1]}: features {features.shape} {features.dtype}, "
          f"{int((split == 0).sum())} train / {int((split == 1).sum())} test, "
          f"{len(meta['class_names'])} classes, model sha256 {meta['model_sha256'][:12]}…, "
          f"spec {json.dumps(meta['spec'])}")
    if len(sys.argv) > 2:
        reference = np.load(sys.argv[2])
        test = features[split == 1][: len(reference)]
        print(f"max |cache - reference| over {len(reference)} test rows: "
              f"{np.abs(test - reference).max():.3g}")


if __name__ == "__main__":
    main()
