#!/usr/bin/env python3
"""Make the bundled Fashion-MNIST subset in data/fashion-mnist-subset/.

300 training images per class (from the train set) and 100 test images per
class (from the t10k set), all 10 classes, chosen with a fixed seed and kept
in their original order. Written as gzipped IDX files with Debian's file
names; gzip mtime is 0 and no file name is stored, so regeneration is
byte-identical.

    python3 data/make_subset.py [--src /usr/share/datasets/fashion-mnist]
"""

import argparse
import gzip
import io
import os

import numpy as np

SEED = 20170828
TRAIN_PER_CLASS = 300
TEST_PER_CLASS = 100
DEFAULT_SRC = "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) != offset + int(np.prod(dims)):
        raise ValueError(f"{path}: wrong length")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def idx_bytes(array):
    """uint8 IDX: magic 0x00000800 | ndim (0x803 for n,28,28; 0x801 for labels), big-endian dims."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_gz(path, payload):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as g:
        g.write(payload)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def choose(labels, per_class, rng):
    chosen = []
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))  # original order of the chosen indices


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=DEFAULT_SRC, help="folder with the full Fashion-MNIST gzipped IDX files")
    ap.add_argument("--out", default=os.path.join(HERE, "fashion-mnist-subset"))
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for split, per_class in (("train", TRAIN_PER_CLASS), ("t10k", TEST_PER_CLASS)):
        images = read_idx_gz(os.path.join(args.src, f"{split}-images-idx3-ubyte.gz"))
        labels = read_idx_gz(os.path.join(args.src, f"{split}-labels-idx1-ubyte.gz"))
        assert images.shape[1:] == (28, 28) and len(images) == len(labels)
        keep = choose(labels, per_class, rng)
        write_gz(os.path.join(args.out, f"{split}-images-idx3-ubyte.gz"), idx_bytes(images[keep]))
        write_gz(os.path.join(args.out, f"{split}-labels-idx1-ubyte.gz"), idx_bytes(labels[keep]))
        counts = np.bincount(labels[keep], minlength=len(CLASSES))
        assert (counts == per_class).all()
        print(f"{split}: {len(keep)} images, {per_class} per class, first indices {keep[:5].tolist()}")
    with open(os.path.join(args.out, "classes.txt"), "w") as f:
        f.write("".join(c + "\n" for c in CLASSES))


if __name__ == "__main__":
    main()
