#!/usr/bin/env python3
"""Models for test_onnx_import: each exported by torch.onnx.export into OUT/<name>.onnx with its input and
PyTorch's output as raw little-endian float32 files (<name>.in, <name>.out) and their shapes in
<name>.shape (two lines of integers). Weights are random with a fixed seed, models in eval mode (BatchNorm's
running statistics randomised too, so that they matter).

Usage: /usr/bin/python3 tests/onnx_import_models.py OUT [--corpus]
  --corpus  writes only the tiny models (< 16 KiB each), for fuzz/corpus/onnx/.
Exit code 3 when torch, torchvision or onnx cannot be imported (the test reports it).
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import onnx  # noqa: F401  (torch.onnx.export needs it for some paths; the test's contract says it is present)
except ImportError as e:  # pragma: no cover
    print("onnx_import_models.py: cannot import %s" % e.name, file=sys.stderr)
    sys.exit(3)


class ViewNet(nn.Module):
    """x.view(x.size(0), -1): Shape, Gather, Unsqueeze, Concat, Reshape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


class DepthwiseNet(nn.Module):
    """Depthwise and dilated convolutions, ReLU6 (Clip), flatten, LeakyReLU, Tanh, Softmax."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm2d(4)
        self.pw = nn.Conv2d(4, 6, 1)
        self.dil = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=2, bias=False)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        x = F.relu6(self.bn(self.dw(x)))
        x = F.leaky_relu(self.pw(x), 0.1)
        x = torch.tanh(self.dil(x))
        x = F.avg_pool2d(x, 2)
        return F.softmax(self.fc(torch.flatten(x, 1)), dim=1)


class SENet(nn.Module):
    """Squeeze-and-excitation (ReduceMean/GlobalAveragePool, Mul broadcast), Concat, Sub, Div, GELU (Erf),
    Hardswish, Hardsigmoid, Sigmoid, Split, Transpose, MaxPool ceil_mode."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1 = nn.Conv2d(8, 2, 1)
        self.fc2 = nn.Conv2d(2, 8, 1)
        self.conv2 = nn.Conv2d(16, 6, 3, stride=2)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        x = self.conv(x)
        s = x.mean([2, 3], keepdim=True)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        y = x * s
        z = F.hardswish(x) - F.hardsigmoid(x) / 2.0
        x = torch.cat([y, F.gelu(z)], 1)
        a, b = torch.split(x, [10, 6], dim=1)
        x = torch.cat([b, a], 1).transpose(2, 3)
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = self.conv2(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x) * 0.5 + 1.0


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def export(out, name, model, shape, seed, opset=13):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    with torch.no_grad():
        randomise_bn(model, gen)
        x = torch.randn(shape, generator=gen)
        y = model(x)
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    x.numpy().astype("<f4").tofile(os.path.join(out, name + ".in"))
    y.numpy().astype("<f4").tofile(os.path.join(out, name + ".out"))
    with open(os.path.join(out, name + ".shape"), "w") as f:
        f.write(" ".join(str(d) for d in x.shape) + "\n" + " ".join(str(d) for d in y.shape) + "\n")
    print("exported %s (%d bytes)" % (name, os.path.getsize(path)))


def main():
    out = sys.argv[1]
    corpus = "--corpus" in sys.argv
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    export(out, "view_net", ViewNet(), (2, 3, 8, 8), 1)
    export(out, "depthwise_net", DepthwiseNet(), (2, 4, 8, 8), 2)
    export(out, "se_net", SENet(), (2, 3, 10, 10), 3)
    # The oldest and newer opsets: axes and splits as attributes (11), HardSwish as one operator (14).
    export(out, "view_net_opset11", ViewNet(), (2, 3, 8, 8), 4, opset=11)
    export(out, "se_net_opset11", SENet(), (2, 3, 10, 10), 5, opset=11)
    export(out, "se_net_opset14", SENet(), (2, 3, 10, 10), 6, opset=14)
    if corpus:
        return
    try:
        import torchvision.models as tvm
    except ImportError:
        print("onnx_import_models.py: cannot import torchvision", file=sys.stderr)
        sys.exit(3)
    for seed, (name, make, size) in enumerate([
            ("resnet18", lambda: tvm.resnet18(num_classes=10), 64),
            ("mobilenet_v2", lambda: tvm.mobilenet_v2(num_classes=10), 64),
            ("squeezenet1_1", lambda: tvm.squeezenet1_1(num_classes=10), 64),
            ("shufflenet_v2_x0_5", lambda: tvm.shufflenet_v2_x0_5(num_classes=10), 64),
            ("mnasnet0_5", lambda: tvm.mnasnet0_5(num_classes=10), 64),
            ("efficientnet_b0", lambda: tvm.efficientnet_b0(num_classes=10), 64),
            ("mobilenet_v3_small", lambda: tvm.mobilenet_v3_small(num_classes=10), 64)]):
        torch.manual_seed(100 + seed)
        export(out, name, make(), (2, 3, size, size), 100 + seed)


if __name__ == "__main__":
    main()
