#!/usr/bin/env python3
"""Export torchvision's ImageNet VGG16, cut at fc7, as an ONNX feature extractor.

The exported graph is features -> avgpool -> flatten -> classifier[0..4]:
Linear(25088, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, in eval mode
(Dropout is the identity). The output is the 4096-d fc7 activation after ReLU.

    # with weights you have (a torchvision state dict, e.g. vgg16-397923af.pth)
    python3 models/export_vgg16.py --weights vgg16-397923af.pth --out vgg16-fc7.onnx
    # random weights: only for testing the pipeline
    python3 models/export_vgg16.py --untrained --out /tmp/vgg16-untrained.onnx

Input `image` float32 (N, 3, 224, 224) with dynamic N; output `features`
float32 (N, 4096); opset 17. Preprocessing expected by the model (see
models/vgg16-torchvision.json): RGB, resize shorter side to 256, centre crop
224, x = (pixel / 255 - mean) / std with mean [0.485, 0.456, 0.406] and std
[0.229, 0.224, 0.225].

This script downloads nothing; torchvision must be installed
(`pip install torchvision` matching the installed torch). Checked with torch
2.15.0 and torchvision 0.29.2 (the newest on PyPI then; it asks for
torch >= 2.14), `--untrained`: 537 MB single file, onnxruntime 1.31.1 gives
(2, 4096) at batch 2, max |ort - torch| = 1e-6.
"""

import argparse
import hashlib
import os
import sys

import numpy as np
import torch
import torch.nn as nn


def build(weights, untrained):
    from torchvision.models import vgg16

    model = vgg16(weights=None)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        model.load_state_dict(state, strict=True)
    elif not untrained:
        raise SystemExit("give --weights PATH or --untrained")
    cut = nn.Sequential(
        model.features,
        model.avgpool,
        nn.Flatten(1),
        *list(model.classifier.children())[:5],  # Linear, ReLU, Dropout, Linear, ReLU  (fc6, fc7)
    )
    kinds = [type(m).__name__ for m in list(cut.children())[3:]]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU"], kinds
    return cut.eval()


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="torchvision VGG16 state dict (.pth)")
    src.add_argument("--untrained", action="store_true", help="random initialisation (pipeline tests only)")
    ap.add_argument("--out", required=True, help="output .onnx path")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--seed", type=int, default=0, help="seed for --untrained and the check input")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build(args.weights, args.untrained)

    dummy = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        model, (dummy,), args.out, dynamo=False, opset_version=args.opset,
        input_names=["image"], output_names=["features"],
        dynamic_axes={"image": {0: "N"}, "features": {0: "N"}},
        do_constant_folding=True, export_params=True,
    )
    size = os.path.getsize(args.out)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB, single file)")

    import onnx

    # the checker loads the file by path, which works for models over 2 GB too
    onnx.checker.check_model(args.out)
    m = onnx.load(args.out, load_external_data=False)
    ins = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in m.graph.input]
    outs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in m.graph.output]
    print(f"inputs {ins}, outputs {outs}, opset {m.opset_import[0].version}")
    assert ins == [("image", ["N", 3, 224, 224])], ins
    assert outs == [("features", ["N", 4096])], outs
    del m

    if not args.no_check:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(args.out, so, providers=["CPUExecutionProvider"])
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))
        got = sess.run(["features"], {"image": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == (2, 4096) and got.dtype == np.float32, (got.shape, got.dtype)
        diff = float(np.abs(got - want).max())
        scale = float(np.abs(want).max())
        print(f"onnxruntime batch 2: output {got.shape}, max |ort - torch| = {diff:.3g} (output max {scale:.3g})")
        assert diff <= 1e-4 * max(1.0, scale), "onnxruntime output differs from torch"
    print(f"sha256 {sha256_of(args.out)}")


if __name__ == "__main__":
    sys.exit(main())
