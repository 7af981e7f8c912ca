#!/usr/bin/env python3
"""Train the compact VGG-style feature extractor bundled with `continual`.

Trains on the Fashion-MNIST TRAINING images of classes 0-4 (T-shirt/top,
Trouser, Pullover, Dress, Coat; 30,000 images), evaluates on the test images
of the same classes (5,000 images), folds every BatchNorm into the conv before
it, drops the training classifier and exports the 256-d feature extractor to a
single self-contained ONNX file.

    python3 models/train_fashion_vgg.py            # defaults reproduce models/fashion-vgg.onnx

Preprocessing (fixed; identical at training and inference, and equal to the
model spec used by the Rust side):

    x = (pixel / 255 - 0.2860) / 0.3530       single channel, 28x28, NCHW

CPU only, 2 threads, seeded and deterministic. Exact bit reproducibility of the
weights across torch versions or CPUs is not promised.
"""

import argparse
import gzip
import hashlib
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = 0.2860
STD = 0.3530
CLASSES = [0, 1, 2, 3, 4]
FEATURE_DIM = 256
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- data

def read_idx_gz(path):
    """Read a gzipped IDX file (MNIST family) into a numpy uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    if data[2] != 0x08:
        raise ValueError(f"{path}: element type 0x{data[2]:02x} is not uint8")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) != offset + count:
        raise ValueError(f"{path}: expected {offset + count} bytes, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def load_split(folder, split, classes):
    images = read_idx_gz(os.path.join(folder, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx_gz(os.path.join(folder, f"{split}-labels-idx1-ubyte.gz"))
    keep = np.isin(labels, classes)
    return images[keep], labels[keep].astype(np.int64)


def preprocess(images_u8):
    """uint8 (N,28,28) -> float32 (N,1,28,28), the fixed normalisation."""
    x = images_u8.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return x[:, None, :, :]


def augment(batch_u8, gen):
    """Random crop with zero padding 2 and random horizontal flip, on raw pixels."""
    n = batch_u8.shape[0]
    padded = F.pad(batch_u8, (2, 2, 2, 2))  # zeros = black background
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(batch_u8)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
        out[i] = torch.flip(crop, dims=[2]) if flip[i] else crop
    return out


# ---------------------------------------------------------------- model

def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FashionVGG(nn.Module):
    def __init__(self, num_classes=len(CLASSES), dropout=0.3):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(1, 32), *conv_bn(32, 32), nn.MaxPool2d(2),
            *conv_bn(32, 64), *conv_bn(64, 64), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURE_DIM), nn.ReLU(inplace=True),  # THE FEATURE
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x):
        return self.classifier(self.dropout(self.features(x)))


def fold_bn(features):
    """Return a new nn.Sequential where every Conv2d -> BatchNorm2d pair is one Conv2d.

    For y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta:
        W' = W * s,   b' = (b - mean) * s + beta,   s = gamma / sqrt(var + eps)
    computed in float64 and rounded once to float32.
    """
    layers = list(features)
    out = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            bn = layers[i + 1]
            w = layer.weight.detach().double()
            b = layer.bias.detach().double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            s = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
            fused = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                              stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                              groups=layer.groups, bias=True)
            with torch.no_grad():
                fused.weight.copy_((w * s.view(-1, 1, 1, 1)).float())
                fused.bias.copy_(((b - bn.running_mean.detach().double()) * s + bn.bias.detach().double()).float())
            out.append(fused)
            i += 2
        else:
            if isinstance(layer, nn.BatchNorm2d):
                raise ValueError("BatchNorm2d not preceded by Conv2d")
            out.append(nn.ReLU() if isinstance(layer, nn.ReLU) else layer)
            i += 1
    return nn.Sequential(*out).eval()


# ---------------------------------------------------------------- training

def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def features_of(net, x, batch=1000):
    with torch.no_grad():
        return torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder with Fashion-MNIST gzipped IDX files")
    ap.add_argument("--out", default=os.path.join(HERE, "fashion-vgg.onnx"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=20171025)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--limit-batches", type=int, default=0, help="debug: stop each epoch after this many batches")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    train_u8, train_y = load_split(args.data, "train", CLASSES)
    test_u8, test_y = load_split(args.data, "t10k", CLASSES)
    print(f"train: {len(train_y)} images, test: {len(test_y)} images, classes {CLASSES}")
    train_u8 = torch.from_numpy(train_u8.copy())[:, None]  # (N,1,28,28) uint8
    train_y = torch.from_numpy(train_y)
    test_x = torch.from_numpy(preprocess(test_u8))
    test_y = torch.from_numpy(test_y)
    mean, std = torch.tensor(MEAN), torch.tensor(STD)

    model = FashionVGG()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.weight_decay)
    steps_per_epoch = (len(train_y) + args.batch - 1) // args.batch
    if args.limit_batches:
        steps_per_epoch = min(steps_per_epoch, args.limit_batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.25)
    gen = torch.Generator().manual_seed(args.seed)

    t_train = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(train_y), generator=gen)
        total, seen, t0 = 0.0, 0, time.time()
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch:(step + 1) * args.batch]
            xb = augment(train_u8[idx], gen).float().div_(255.0).sub_(mean).div_(std)
            yb = train_y[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        acc = evaluate(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / seen:.4f}, test acc {acc:.4f}, "
              f"{time.time() - t0:.0f} s", flush=True)
    train_seconds = time.time() - t_train

    model.eval()
    test_acc = evaluate(model, test_x, test_y)

    # ---- fold BatchNorm, drop the classifier, check numerically
    unfolded = model.features.eval()
    folded = fold_bn(unfolded)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    f_ref = features_of(unfolded, test_x)
    f_fold = features_of(folded, test_x)
    fold_diff = (f_ref - f_fold).abs().max().item()
    print(f"BN folding: max |folded - unfolded| over {len(test_x)} test images = {fold_diff:.3g} "
          f"(feature max {f_ref.abs().max().item():.3g})")
    assert fold_diff <= 1e-5, "folded model differs from the unfolded one"
    with torch.no_grad():
        changed = (model.classifier(f_fold).argmax(1) != model.classifier(f_ref).argmax(1)).sum().item()
    print(f"BN folding: {changed} of {len(test_x)} test predictions change")

    # ---- export
    import onnx
    import onnxruntime as ort

    dummy = test_x[:2].clone()
    torch.onnx.export(
        folded, (dummy,), args.out, dynamo=False, opset_version=args.opset,
        input_names=["image"], output_names=["features"],
        dynamic_axes={"image": {0: "N"}, "features": {0: "N"}},
        do_constant_folding=True, export_params=True,
    )
    m = onnx.load(args.out)
    onnx.checker.check_model(m, full_check=True)
    for t in m.graph.initializer:
        assert t.data_location != onnx.TensorProto.EXTERNAL, "external data found"
    ins = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in m.graph.input]
    outs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in m.graph.output]
    print(f"ONNX inputs {ins}, outputs {outs}, opset {m.opset_import[0].version}")
    assert ins == [("image", ["N", 1, 28, 28])], ins
    assert outs == [("features", ["N", FEATURE_DIM])], outs

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.out, so, providers=["CPUExecutionProvider"])
    for n in (1, 7, 64):
        xb = test_x[:n]
        got = sess.run(["features"], {"image": xb.numpy()})[0]
        want = features_of(folded, xb).numpy()
        want_unfolded = features_of(unfolded, xb).numpy()
        assert got.shape == (n, FEATURE_DIM) and got.dtype == np.float32
        d = float(np.abs(got - want).max())
        d2 = float(np.abs(got - want_unfolded).max())
        print(f"onnxruntime batch {n}: max |ort - torch folded| = {d:.3g}, |ort - torch unfolded| = {d2:.3g}")
        assert d <= 1e-5 and d2 <= 1e-5

    size = os.path.getsize(args.out)
    print(f"test accuracy on classes 0-4 ({len(test_y)} images): {test_acc:.4f}")
    print(f"epochs {args.epochs}, training time {train_seconds:.0f} s, total {time.time() - t_start:.0f} s, "
          f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    print(f"wrote {args.out} ({size} bytes)")
    print(f"sha256 {sha256_of(args.out)}")


if __name__ == "__main__":
    sys.exit(main())
