#!/usr/bin/python3
"""Checks the ONNX files test_graph wrote from graph::Graph objects, with ONNX's checker and OpenCV's dnn.

    /usr/bin/python3 tests/onnx_graph_check.py DIR

For every DIR/<case>.onnx, with <case>.json ({"input": [shape], "output": [shape]}) and <case>.input /
<case>.output (raw float32: a batch and ember's Plan.run of it): onnx.checker.check_model(full_check=True), then
OpenCV runs the file on the batch; its output must equal ember's within 1e-4 of the output's scale.
Prints one line per case; exits 1 when any check fails.
"""
import glob
import json
import os
import sys

import cv2
import numpy as np
import onnx

failed = False
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.onnx"))):
    case = path[: -len(".onnx")]
    shapes = json.load(open(case + ".json"))
    x = np.fromfile(case + ".input", dtype=np.float32).reshape(shapes["input"])
    expected = np.fromfile(case + ".output", dtype=np.float32).reshape(shapes["output"])
    onnx.checker.check_model(onnx.load(path), full_check=True)
    net = cv2.dnn.readNetFromONNX(path)
    net.setInput(x)
    got = net.forward().reshape(expected.shape)
    diff = float(np.max(np.abs(got - expected)) / max(float(np.max(np.abs(expected))), 1e-30))
    ok = diff < 1e-4
    failed = failed or not ok
    print("%s: OpenCV vs ember, largest relative difference %.3g%s" % (os.path.basename(case), diff, "" if ok else "  FAILED"))
sys.exit(1 if failed else 0)
