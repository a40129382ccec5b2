#!/usr/bin/python3
"""Checks the ONNX files that ember wrote, with ONNX's own checker, OpenCV's dnn module and PyTorch.

    /usr/bin/python3 tests/onnx_interop.py DIR [--tolerance 1e-4]

For every DIR/<case>.onnx (test_onnx writes them, with <case>.safetensors, the model's checkpoint, and
<case>.io.safetensors, a batch "input" and ember's predict of it, "output"):
  - onnx.checker.check_model(full_check=True); the graph reads "input" with a symbolic batch "N" and writes
    "output"; every float initialiser is a tensor of the checkpoint under the same dotted name, bit for bit;
    metadata_props holds the model's printout and input_shape;
  - OpenCV's dnn module runs the file on the batch: its output equals ember's within the tolerance;
  - the PyTorch twin of the model (built from the printout, weights from the checkpoint) agrees with ember,
    and torch.onnx.export's file of it, run by OpenCV, gives the outputs of ember's file within the tolerance.
Prints one line per case with the largest differences; exits 1 when any check fails.
Needs Debian's python3-onnx, python3-opencv, python3-torch and python3-numpy.
"""
import argparse
import collections
import glob
import io
import json
import os
import re
import sys
import warnings

import cv2
import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from checkpoint_to_torch import read_safetensors  # noqa: E402


class Residual(torch.nn.Module):
    """output = body(x) + shortcut(x) (the identity without a shortcut), as ember's nn::Residual."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


# Cases whose torch.onnx.export file OpenCV 4.6 runs wrongly (ember's file of the same model runs right): the
# comparison of the two files is reported, not required.
FLATTEN_2 = ("torch exports Flatten(2) as Shape, Slice, Concat and Reshape; OpenCV 4.6 takes the batch into "
             "the shape it computes")
TORCH_FILE_WRONG_IN_OPENCV = {"flatten_partial": FLATTEN_2, "batchnorm1d_3d": FLATTEN_2}


def leaf(text):
    """A layer from its printout, which ember writes as PyTorch does: Conv2d(1, 75, kernel_size=(3, 3), ...)."""
    names = {k: v for k, v in vars(torch.nn).items() if isinstance(v, type)}
    return eval(text, {"__builtins__": {}}, names)  # the printout of a model this suite built


def twin(printout):
    """The PyTorch module whose printout is `printout`: containers become nn.Sequential (or Residual),
    children keep their names, so the checkpoint's dotted names fit its state_dict."""
    lines = printout.split("\n")
    pos = 1

    def container(kind):
        nonlocal pos
        children = collections.OrderedDict()
        while True:
            line = lines[pos].strip()
            pos += 1
            if line == ")":
                break
            m = re.match(r"\(([^)]*)\): (.*)$", line)
            if not m:
                raise ValueError("unexpected printout line: %r" % line)
            name, body = m.groups()
            children[name] = container(body[:-1]) if body.endswith("(") else leaf(body)
        if kind == "Residual":
            return Residual(children["body"], children.get("shortcut"))
        return torch.nn.Sequential(children)

    first = lines[0]
    if first.endswith("("):
        return container(first[:-1])
    if not hasattr(torch.nn, first.split("(")[0]):
        return torch.nn.Sequential()  # an empty container, "Net()"
    return leaf(first)


def opencv_run(path_or_bytes, x):
    net = cv2.dnn.readNetFromONNX(path_or_bytes)
    net.setInput(x)
    return net.forward()


def check_case(onnx_path, tolerance):
    stem = onnx_path[: -len(".onnx")]
    case = os.path.basename(stem)
    problems = []
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)

    state, meta = read_safetensors(stem + ".safetensors")
    io_tensors, _ = read_safetensors(stem + ".io.safetensors")
    x = io_tensors["input"].numpy()
    expected = io_tensors["output"].numpy()

    g = model.graph
    if [i.name for i in g.input] != ["input"] or [o.name for o in g.output] != ["output"]:
        problems.append("inputs %s, outputs %s" % ([i.name for i in g.input], [o.name for o in g.output]))
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.shape.dim[0].dim_param != "N":
            problems.append("%s: batch dimension is not the symbolic N" % v.name)
    for init in g.initializer:
        if "/" in init.name:
            continue  # a node's constants (a Pad's pads, a Reshape's shape, GELU's numbers): "<module>/<what>"
        if init.name not in state:
            problems.append("initialiser %s is not a tensor of the checkpoint" % init.name)
        elif not np.array_equal(numpy_helper.to_array(init), state[init.name].numpy()):
            problems.append("initialiser %s differs from the checkpoint's" % init.name)
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("model") != meta.get("model"):
        problems.append("metadata 'model' is not the model's printout")
    if json.loads(props.get("input_shape", "null")) != list(x.shape[1:]):
        problems.append("metadata 'input_shape' is %s" % props.get("input_shape"))

    ours = opencv_run(onnx_path, x)
    d_ours = float(np.max(np.abs(ours - expected))) if ours.shape == expected.shape else float("inf")
    if ours.shape != expected.shape:
        problems.append("OpenCV's output has shape %s, ember's %s" % (ours.shape, expected.shape))

    net = twin(meta["model"])
    net.load_state_dict(collections.OrderedDict((k, v) for k, v in state.items()), strict=True)
    net.eval()
    with torch.no_grad():
        theirs_torch = net(torch.from_numpy(x)).numpy()
    d_torch = float(np.max(np.abs(theirs_torch - expected)))
    exported = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.from_numpy(x[:1]), exported, opset_version=13, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    with open(stem + ".torch.onnx", "wb") as f:
        f.write(exported.getvalue())
    theirs = opencv_run(stem + ".torch.onnx", x)
    d_files = float(np.max(np.abs(theirs - ours))) if theirs.shape == ours.shape else float("inf")

    notes = []
    for what, d in (("OpenCV on ember's file vs ember", d_ours), ("PyTorch vs ember", d_torch),
                    ("OpenCV on torch.onnx.export's file vs on ember's", d_files)):
        if d <= tolerance:
            continue
        if what.startswith("OpenCV on torch") and case in TORCH_FILE_WRONG_IN_OPENCV:
            notes.append("torch's file: OpenCV output of shape %s, not %s (known: %s)"
                         % (theirs.shape, ours.shape, TORCH_FILE_WRONG_IN_OPENCV[case]))
        else:
            problems.append("%s: largest difference %.3g > %g" % (what, d, tolerance))
    ops = collections.Counter(n.op_type for n in g.node)
    print("%-18s ember file in OpenCV vs ember %.2e | PyTorch vs ember %.2e | torch's file vs ember's in OpenCV "
          "%.2e | batch %d, nodes %s" % (case, d_ours, d_torch, d_files, x.shape[0],
                                         " ".join("%s%s" % (k, "x%d" % v if v > 1 else "") for k, v in ops.items())))
    for n in notes:
        print("  note %s: %s" % (case, n))
    for p in problems:
        print("  FAILED %s: %s" % (case, p))
    return not problems


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args()
    files = sorted(f for f in glob.glob(os.path.join(args.dir, "*.onnx")) if not f.endswith(".torch.onnx"))
    if not files:
        sys.exit("no .onnx files in %s" % args.dir)
    print("onnx %s, OpenCV %s, PyTorch %s; tolerance %g" % (onnx.__version__, cv2.__version__, torch.__version__,
                                                          args.tolerance))
    ok = True
    for f in files:
        try:
            ok = check_case(f, args.tolerance) and ok
        except Exception as e:  # one broken case must not hide the others
            print("  FAILED %s: %s: %s" % (os.path.basename(f), type(e).__name__, e))
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
