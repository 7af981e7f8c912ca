#!/usr/bin/env python3
"""Make the test fixtures in tests/data/ (seeded, re-runnable, byte-stable).

    python3 tests/data/make_fixtures.py [--fashion /usr/share/datasets/fashion-mnist]

Needs numpy, onnx and onnxruntime (the references were made with
onnxruntime 1.31.1, CPU, one thread), models/fashion-vgg.onnx and
data/fashion-mnist-subset/. Pillow is used, if installed, only to cross-check
that the PNG files written here decode to the intended pixels.

Writes:
  images/NN_<label>.png        10 grayscale 28x28 PNGs, the first t10k image of each class
  images_rgb/NN_<label>.png    the same images as 8-bit RGB (gray replicated, R=G=B)
  reference/fashion_vgg_input.npy            (10,1,28,28) float32, preprocessed images/*.png
  reference/fashion_vgg_features.npy         (10,256) float32, models/fashion-vgg.onnx on that input
  reference/subset_test_first64_features.npy (64,256) float32, first 64 images of
                                             data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz
  keras_tiny.onnx / keras_tiny.png           NHWC toy graph with a known Caffe-preprocessing answer
  bad_scalar_output.onnx, bad_rank2_input.onnx, not_a_model.onnx, corrupt.png   for error paths
"""

import argparse
import gzip
import os
import struct
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SEED = 0  # nothing here is random; kept for the record
MEAN = np.float32(0.2860)  # must equal the bundled model spec and models/train_fashion_vgg.py
STD = np.float32(0.3530)
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17


# ---------------------------------------------------------------- PNG (minimal, deterministic)

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(pixels):
    """uint8 (H,W) -> grayscale PNG, uint8 (H,W,3) -> RGB PNG; 8 bits, no filter, no metadata."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        color_type = 0
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        color_type = 2
    else:
        raise ValueError(pixels.shape)
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))  # filter type 0 per row
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def png_decode(data):
    """Decode the PNGs written above (8-bit gray or RGB, filter 0, no interlace)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, color_type, _, _, interlace = ihdr
    assert depth == 8 and interlace == 0 and color_type in (0, 2)
    ch = 1 if color_type == 0 else 3
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + w * ch)
    assert (raw[:, 0] == 0).all(), "only filter type 0 is handled"
    px = raw[:, 1:].reshape(h, w, ch)
    return px[:, :, 0] if ch == 1 else px


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- data

def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    assert data[0] == 0 and data[1] == 0 and data[2] == 0x08, path
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def preprocess(gray_u8):
    """uint8 (N,28,28) -> float32 (N,1,28,28): x = (pixel/255 - 0.2860)/0.3530, all in float32."""
    x = gray_u8.astype(np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return x[:, None, :, :].astype(np.float32)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- tiny ONNX graphs

def save_model(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="continual-fixtures")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    write(path, model.SerializeToString())


def keras_tiny(path):
    inp = helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", 4, 4, 3])
    out = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])
    node = helper.make_node("ReduceMean", ["input_1"], ["features"], axes=[1, 2], keepdims=0)  # opset 17: axes attribute
    save_model(helper.make_graph([node], "keras_tiny", [inp], [out]), path)


def bad_scalar_output(path):
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])
    out = helper.make_tensor_value_info("features", TensorProto.FLOAT, [])
    node = helper.make_node("ReduceMean", ["image"], ["features"], keepdims=0)  # no axes: all axes -> scalar
    save_model(helper.make_graph([node], "bad_scalar_output", [inp], [out]), path)


def bad_rank2_input(path):
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 784])
    out = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 784])
    node = helper.make_node("Relu", ["image"], ["features"])
    save_model(helper.make_graph([node], "bad_rank2_input", [inp], [out]), path)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist",
                    help="folder with the full Fashion-MNIST gzipped IDX files (for the t10k images)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fashion-vgg.onnx"))
    ap.add_argument("--subset", default=os.path.join(ROOT, "data", "fashion-mnist-subset"))
    args = ap.parse_args()

    if ort.__version__ != "1.31.1":
        print(f"warning: onnxruntime {ort.__version__}; the committed references were made with 1.31.1",
              file=sys.stderr)

    # a. one PNG per class: the first t10k image of that class
    images = read_idx_gz(os.path.join(args.fashion, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx_gz(os.path.join(args.fashion, "t10k-labels-idx1-ubyte.gz"))
    names = []
    for c in range(10):
        i = int(np.flatnonzero(labels == c)[0])
        name = f"{c:02d}_{c}.png"
        names.append(name)
        gray = images[i]
        write(os.path.join(HERE, "images", name), png_bytes(gray))
        write(os.path.join(HERE, "images_rgb", name), png_bytes(np.repeat(gray[:, :, None], 3, axis=2)))
        print(f"{name}: t10k index {i}")

    # decode what was written, in sorted file-name order
    names = sorted(os.listdir(os.path.join(HERE, "images")))
    assert names == [f"{c:02d}_{c}.png" for c in range(10)]
    gray = np.stack([png_decode(open(os.path.join(HERE, "images", n), "rb").read()) for n in names])
    rgb = np.stack([png_decode(open(os.path.join(HERE, "images_rgb", n), "rb").read()) for n in names])
    assert gray.shape == (10, 28, 28) and rgb.shape == (10, 28, 28, 3)
    assert (rgb == gray[..., None]).all()
    try:
        from PIL import Image
    except ImportError:
        print("Pillow not installed: PNG cross-check skipped")
    else:
        for k, n in enumerate(names):
            with Image.open(os.path.join(HERE, "images", n)) as im:
                assert im.mode == "L" and (np.asarray(im) == gray[k]).all()
            with Image.open(os.path.join(HERE, "images_rgb", n)) as im:
                assert im.mode == "RGB" and (np.asarray(im) == rgb[k]).all()
        print("PNG cross-check with Pillow: ok")

    # b. reference features from the bundled model
    sess = session(args.model)
    x = preprocess(gray)
    feats = sess.run(["features"], {"image": x})[0]
    assert feats.shape == (10, 256) and feats.dtype == np.float32
    one_by_one = np.concatenate([sess.run(["features"], {"image": x[k:k + 1]})[0] for k in range(10)])
    print(f"batch 10 vs one by one: max diff {np.abs(feats - one_by_one).max():.3g}")
    ref = os.path.join(HERE, "reference")
    os.makedirs(ref, exist_ok=True)
    np.save(os.path.join(ref, "fashion_vgg_input.npy"), x)
    np.save(os.path.join(ref, "fashion_vgg_features.npy"), feats)

    subset = read_idx_gz(os.path.join(args.subset, "t10k-images-idx3-ubyte.gz"))[:64]
    sub_feats = sess.run(["features"], {"image": preprocess(subset)})[0]
    assert sub_feats.shape == (64, 256) and sub_feats.dtype == np.float32
    np.save(os.path.join(ref, "subset_test_first64_features.npy"), sub_feats)
    print(f"features: images {feats.shape}, subset {sub_feats.shape}; "
          f"nonzero fraction {np.mean(feats > 0):.2f}, max {feats.max():.3f}")

    # c. Keras-style NHWC toy graph and its known answer.
    # Caffe preprocessing of pixel (R,G,B) = (200,100,50): BGR order, scale 1, subtract the
    # BGR means [103.939, 116.779, 123.68]:
    #   [50 - 103.939, 100 - 116.779, 200 - 123.68] = [-53.939, -16.779, 76.32]
    # and the mean over the 4x4 positions of a constant image is that same vector.
    keras_tiny(os.path.join(HERE, "keras_tiny.onnx"))
    write(os.path.join(HERE, "keras_tiny.png"), png_bytes(np.full((4, 4, 3), (200, 100, 50), dtype=np.uint8)))
    px = png_decode(open(os.path.join(HERE, "keras_tiny.png"), "rb").read()).astype(np.float32)
    bgr = px[:, :, ::-1] - np.array([103.939, 116.779, 123.68], dtype=np.float32)
    batch = np.stack([bgr, bgr])  # (2,4,4,3), dynamic N
    out = session(os.path.join(HERE, "keras_tiny.onnx")).run(["features"], {"input_1": batch})[0]
    expected = np.array([-53.939, -16.779, 76.32], dtype=np.float32)
    assert out.shape == (2, 3), out.shape
    assert np.allclose(out, expected[None], atol=1e-4), out
    print(f"keras_tiny: {out[0].tolist()} (expected {expected.tolist()})")

    # d-g. error paths
    bad_scalar_output(os.path.join(HERE, "bad_scalar_output.onnx"))
    o = session(os.path.join(HERE, "bad_scalar_output.onnx")).run(
        ["features"], {"image": np.zeros((3, 1, 28, 28), np.float32)})[0]
    assert o.shape == (), o.shape
    bad_rank2_input(os.path.join(HERE, "bad_rank2_input.onnx"))
    o = session(os.path.join(HERE, "bad_rank2_input.onnx")).run(
        ["features"], {"image": np.zeros((3, 784), np.float32)})[0]
    assert o.shape == (3, 784), o.shape
    write(os.path.join(HERE, "not_a_model.onnx"), b"this is not an ONNX model\n")
    write(os.path.join(HERE, "corrupt.png"), open(os.path.join(HERE, "images", names[0]), "rb").read()[:60])
    print("done")


if __name__ == "__main__":
    main()
