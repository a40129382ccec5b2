#!/usr/bin/python3
"""torchvision classification models (random initial weights, nothing downloaded) as ONNX files for
onnx_peers.py and onnx_coverage.py, with PyTorch's own output on the fixed input every program uses.

    /usr/bin/python3 benchmarks/compare/export_torchvision.py [--models resnet18,mobilenet_v2] [--size 224]
        [--batches 1,8] [--dir build-peers/onnx] [--opset 11]

Writes DIR/MODEL_SIZE.onnx (batch dimension dynamic, eval mode, torch.manual_seed(0) before the model is built)
and DIR/MODEL_SIZE_bB.torch.bin: PyTorch's output for batch B of the fixed input (raw float32), the input being
value i = (i * 2654435761 mod 2^32 >> 8) / 2^23 - 1, as cmp::fixed_value in workload_common.hpp.
Opset 11 by default: the one OpenCV 4.6's ONNX importer is tested on most (ember reads 11 to 17).
"""
import argparse
import os

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def fixed_input(shape):
    n = int(np.prod(shape))
    h = (np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return torch.from_numpy(((h >> np.uint64(8)).astype(np.float32) / np.float32(8388608.0)) - 1).reshape(shape)


def build(name):
    """The model with random weights and, as a trained model has, BatchNorm statistics and affine parameters that
    are not the initial ones (with the initial ones every folded bias is zero, torch.onnx.export shares the equal
    tensors through Identity nodes, and OpenCV 4.6 cannot read an Identity of a weight)."""
    torch.manual_seed(0)
    kwargs = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False  # eval mode drops them anyway
        kwargs["init_weights"] = True
    model = getattr(torchvision.models, name)(**kwargs).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
    return model


def inline_identities(path):
    """Replaces each Identity of a weight by a copy of the weight under the Identity's output name (what
    onnx-simplifier does): the same model, and one OpenCV 4.6 reads."""
    import onnx
    m = onnx.load(path)
    inits = {i.name: i for i in m.graph.initializer}
    keep = []
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
            t.name = n.output[0]
            m.graph.initializer.append(t)
        else:
            keep.append(n)
    if len(keep) != len(m.graph.node):
        del m.graph.node[:]
        m.graph.node.extend(keep)
        onnx.save(m, path)


def export(name, size, batches, out_dir, opset=11):
    """The .onnx path; writes PyTorch's outputs for each batch beside it."""
    os.makedirs(out_dir, exist_ok=True)
    model = build(name)
    path = os.path.join(out_dir, f"{name}_{size}.onnx")
    x = fixed_input((1, 3, size, size))
    # Not under no_grad: there eval-mode attention takes PyTorch's fused fast path, which has no ONNX export.
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    inline_identities(path)
    with torch.no_grad():
        for b in batches:
            y = model(fixed_input((b, 3, size, size)))
            y.numpy().astype(np.float32).tofile(os.path.join(out_dir, f"{name}_{size}_b{b}.torch.bin"))
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--dir", default=os.path.join(ROOT, "build-peers", "onnx"))
    ap.add_argument("--opset", type=int, default=11)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    for name in a.models.split(","):
        print(export(name, a.size, [int(b) for b in a.batches.split(",")], a.dir, a.opset))


if __name__ == "__main__":
    main()
