#!/usr/bin/python3
"""Which torchvision classification models ember and OpenCV's dnn each load and run from PyTorch's ONNX export,
and how far each output is from PyTorch's.

    /usr/bin/python3 benchmarks/compare/onnx_coverage.py [--build build-peers] [--models m1,m2 | --all]
        [--json out.json]

For each model (random initial weights and BatchNorm statistics, export_torchvision.build), at the smallest of
64, 96 and 224 pixels that PyTorch itself runs and exports: the file is exported at opset 11 (13 or 17 where
PyTorch cannot export an operator at 11); ember
(ember_onnx_workloads: io::load_onnx, graph::optimize, graph::Plan) runs it, or, when it cannot, the export at
opset 13 and then 17; OpenCV (opencv_workloads: readNetFromONNX, default backend) runs it, or, when it cannot,
the export at opset 10 and then 13. Each side's output on the fixed input (batch 1) is compared with PyTorch's: "ok" when
the largest absolute difference is within 1e-3 of the largest output (relative), "wrong" otherwise, or the
first line of the error. By default one model per family (the smallest); --all takes every model
torchvision.models.list_models() names, except those over 150 M parameters (their files pass ONNX's 2 GB limit
or take minutes to export).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import export_torchvision  # noqa: E402

FAMILIES = ["alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_s", "googlenet",
            "inception_v3", "maxvit_t", "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small", "regnet_x_400mf",
            "regnet_y_400mf", "resnet18", "resnet50", "resnext50_32x4d", "shufflenet_v2_x0_5", "squeezenet1_0",
            "squeezenet1_1", "swin_t", "swin_v2_t", "vgg11", "vgg11_bn", "vit_b_32", "wide_resnet50_2"]


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if "Node [" in line or "error" in line.lower() or "what()" in line:
            return line[:160]
    return (text.strip().splitlines() or ["?"])[-1][:160]


def run_side(exe, path, size, out_file):
    try:
        p = subprocess.run([exe, path, "--batch", "1", "--seconds", "0", "--threads", "2", "--size", str(size),
                            "--out", out_file], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "timeout (300 s)"
    if p.returncode != 0:
        return None, first_line(p.stderr)
    return np.fromfile(out_file, dtype=np.float32), None


def judge(out, ref):
    if out is None:
        return None
    if out.size != ref.size:
        return {"status": "wrong", "diff": None, "note": f"{out.size} outputs, PyTorch {ref.size}"}
    d = float(np.abs(out - ref).max())
    scale = float(np.abs(ref).max())
    return {"status": "ok" if d <= 1e-3 * max(scale, 1e-6) or d < 1e-5 else "wrong", "diff": d}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-peers"))
    ap.add_argument("--models", default=",".join(FAMILIES))
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    exes = {k: os.path.join(a.build, "benchmarks", k) for k in ("ember_onnx_workloads", "opencv_workloads")}
    for e in exes.values():
        if not os.path.exists(e):
            sys.exit(f"onnx_coverage.py: {e} not found (docs/benchmarks.md: -DEMBER_BUILD_PEER_BENCHMARKS=ON)")
    models = torchvision.models.list_models(module=torchvision.models) if a.all else a.models.split(",")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}; {len(models)} models")
    tmp = tempfile.mkdtemp(prefix="onnx_coverage_")
    rows = []
    print("| model | input | ember | ember max abs diff | OpenCV dnn | OpenCV max abs diff | largest output |")
    print("|---|---|---|---|---|---|---|")
    for name in models:
        row = {"model": name}
        try:
            model = export_torchvision.build(name)
        except Exception as e:  # noqa: BLE001 - a model torchvision cannot build here
            row["error"] = f"build: {e}"
            rows.append(row)
            print(f"| {name} | - | (not built: {e}) | | | | |", flush=True)
            continue
        params = sum(p.numel() for p in model.parameters())
        if params > 150e6:
            row["skipped"] = f"{params / 1e6:.0f} M parameters"
            rows.append(row)
            print(f"| {name} | - | skipped: {params / 1e6:.0f} M parameters | | | | |", flush=True)
            continue
        size, files = None, {}
        for s in (64, 96, 224):
            for opset in (11, 13, 17):  # a later opset where PyTorch cannot export an operator at 11 (einsum)
                try:
                    path = export_torchvision.export(name, s, [1], os.path.join(tmp, f"opset{opset}"), opset=opset)
                    size, files[opset] = s, path
                    break
                except Exception as e:  # noqa: BLE001 - too small an input for this model, or not exportable
                    row.setdefault("export_errors", []).append(f"{s}, opset {opset}: {str(e).splitlines()[0][:120]}")
            if size is not None:
                break
        if size is None:
            rows.append(row)
            print(f"| {name} | - | (PyTorch's export fails: {row['export_errors'][-1]}) | | | | |", flush=True)
            continue
        ref = np.fromfile(os.path.splitext(files[min(files)])[0] + "_b1.torch.bin", dtype=np.float32)
        row.update(size=size, scale=float(np.abs(ref).max()))
        for side, opsets in (("ember", (11, 13, 17)), ("opencv", (11, 10, 13))):
            exe = exes["ember_onnx_workloads" if side == "ember" else "opencv_workloads"]
            errors = []
            for opset in opsets:
                if opset < min(files) and side == "ember" or opset == 13 and side == "opencv" and 11 in files:
                    continue
                if opset not in files:
                    d = os.path.join(tmp, f"opset{opset}")
                    try:
                        files[opset] = export_torchvision.export(name, size, [1], d, opset=opset)
                    except Exception as e:  # noqa: BLE001
                        errors.append(f"opset {opset}: export fails: {str(e).splitlines()[0][:100]}")
                        continue
                out, err = run_side(exe, files[opset], size, os.path.join(tmp, f"{name}.{side}.bin"))
                if err is None:
                    row[side] = dict(judge(out, ref), opset=opset)
                    break
                errors.append(f"opset {opset}: {err}")
            if side not in row:
                row[side] = {"status": "fails", "errors": errors}
        cells = []
        for side in ("ember", "opencv"):
            r = row[side]
            if r["status"] == "fails":
                cells += [f"fails: {r['errors'][0]}", "-"]
            else:
                cells += [f"{r['status']} (opset {r['opset']})" + (f", {r['note']}" if r.get("note") else ""),
                          "-" if r["diff"] is None else f"{r['diff']:.1e}"]
        print(f"| {name} | {size}x{size} | " + " | ".join(cells) + f" | {row['scale']:.2f} |", flush=True)
        rows.append(row)
        shutil.rmtree(tmp)
        os.makedirs(tmp)
    ok = {s: {r["model"] for r in rows if r.get(s, {}).get("status") == "ok"} for s in ("ember", "opencv")}
    print()
    print(f"ember runs {len(ok['ember'])}, OpenCV {len(ok['opencv'])} of {len(rows)} correctly.")
    print(f"OpenCV runs, ember does not: {sorted(ok['opencv'] - ok['ember']) or 'none'}")
    print(f"ember runs, OpenCV does not: {sorted(ok['ember'] - ok['opencv']) or 'none'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
