#!/usr/bin/python3
"""ember against OpenCV's dnn on torchvision models from ONNX files, side by side in one run.

    /usr/bin/python3 benchmarks/compare/onnx_peers.py [--build build-peers] [--models resnet18,mobilenet_v2]
        [--batches 1,8] [--rounds 3] [--seconds 1.5] [--threads 2] [--json out.json]

Needs the targets ember_onnx_workloads and opencv_workloads of a tree configured with
-DEMBER_BUILD_PEER_BENCHMARKS=ON (docs/benchmarks.md). Exports the models first when their files are missing
(export_torchvision.py: random initial weights, 224x224, opset 11, batch dynamic). Each round runs every model
and batch on each side in its own process, alternating: ember (io::load_onnx, graph::optimize, graph::Plan) as
shipped and with OMP_WAIT_POLICY=PASSIVE, OpenCV (cv::dnn::readNetFromONNX, default backend and target,
cv::setNumThreads(threads)). Prints images/s (median over the rounds, each side at its best tuning), and the
largest absolute difference between ember's and OpenCV's outputs, and each against PyTorch's, on the same fixed
input (cmp::fixed_value).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)


def run(cmd, env_extra, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), **env_extra)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()[-400:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-peers"))
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write every run here")
    a = ap.parse_args()
    exes = {k: os.path.join(a.build, "benchmarks", k) for k in ("ember_onnx_workloads", "opencv_workloads")}
    for k, e in exes.items():
        if not os.path.exists(e):
            sys.exit(f"onnx_peers.py: {e} not found; configure with -DEMBER_BUILD_PEER_BENCHMARKS=ON and build {k} "
                     "(docs/benchmarks.md)")
    import export_torchvision  # torch and torchvision: only when this script runs
    models = a.models.split(",")
    batches = [int(b) for b in a.batches.split(",")]
    onnx_dir = os.path.join(a.build, "onnx")
    files = {}
    for m in models:
        files[m] = os.path.join(onnx_dir, f"{m}_224.onnx")
        if not all(os.path.exists(p) for p in [files[m]] + [files[m][:-5] + f"_b{b}.torch.bin" for b in batches]):
            export_torchvision.export(m, 224, batches, onnx_dir)
    # OpenCV 4.6 reads a file where it can; where it cannot (mobilenet_v2 at opset 11: its Clip takes min and
    # max as inputs, which OpenCV 4.6's importer refuses), the same weights exported at opset 10, the newest it
    # reads for it (ember reads opsets 11 to 17, so it keeps the opset-11 file).
    opencv_files = {}
    for m in models:
        probe = subprocess.run([exes["opencv_workloads"], files[m], "--seconds", "0", "--threads", "1"],
                               capture_output=True, text=True)
        opencv_files[m] = files[m]
        if probe.returncode != 0:
            reason = next((l.strip() for l in probe.stderr.splitlines() if "Node [" in l), probe.stderr.strip()[-200:])
            opencv_files[m] = export_torchvision.export(m, 224, batches, os.path.join(onnx_dir, "opset10"), opset=10)
            print(f"OpenCV cannot read {files[m]} ({reason}); it runs {opencv_files[m]}, the same weights at opset 10")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    meta = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu, "commit": commit,
            "threads": a.threads, "load_start": load()}
    print(f"{meta['date']}  {cpu}  commit {commit}  threads {a.threads}  load average at start {meta['load_start']}")

    sides = [("ember[default]", "ember_onnx_workloads", {}), ("ember[passive]", "ember_onnx_workloads",
                                                              {"OMP_WAIT_POLICY": "PASSIVE"}),
             ("opencv[default]", "opencv_workloads", {})]
    res, diffs, infos = {}, {}, {}
    for r in range(a.rounds):
        for m in models:
            for b in batches:
                key = (m, b)
                line = f"round {r + 1} {m:13s} batch {b}"
                outs = {}
                for name, exe, env in sides:
                    out_file = os.path.join(onnx_dir, f"{m}_b{b}.{name.split('[')[0]}.bin")
                    p = run([exes[exe], opencv_files[m] if exe == "opencv_workloads" else files[m], "--batch", str(b), "--seconds", str(a.seconds), "--threads",
                             str(a.threads), "--out", out_file], env, a.threads)
                    res.setdefault(key, {}).setdefault(name, []).append(p)
                    infos.setdefault(name, p.get("backend", {"version": p.get("version")}))
                    outs[name.split("[")[0]] = np.fromfile(out_file, dtype=np.float32)
                    line += f"  {name} {p['images_per_s']:.1f}"
                ref = np.fromfile(files[m][:-5] + f"_b{b}.torch.bin", dtype=np.float32)
                diffs[key] = {"ember-opencv": float(np.abs(outs["ember"] - outs["opencv"]).max()),
                              "ember-torch": float(np.abs(outs["ember"] - ref).max()),
                              "opencv-torch": float(np.abs(outs["opencv"] - ref).max()),
                              "output_scale": float(np.abs(ref).max())}
                print(line, flush=True)
    meta["load_end"] = load()
    for name, info in infos.items():
        print(f"{name}: {json.dumps(info)}")

    def med(key, name):
        return statistics.median(x["images_per_s"] for x in res[key][name])

    def cpu_rate(key, name):
        """Images per CPU second (user + system, all threads), median over the rounds: what a loaded machine
        leaves comparable."""
        return statistics.median(x["steps"] * x["batch"] / x["cpu_seconds"] for x in res[key][name])

    print()
    print(f"{meta['date']}, {cpu}, commit {commit}, {a.threads} threads, median of {a.rounds} rounds of {a.seconds} s; "
          f"load average {meta['load_start']} at start, {meta['load_end']} at end")
    hdr = ("| model (224x224) | batch | ember img/s | ember tuning | OpenCV dnn img/s | ember / OpenCV | "
           "ember img per CPU s | OpenCV img per CPU s | max abs diff ember-OpenCV | ember-PyTorch | OpenCV-PyTorch | "
           "largest output |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    table = []
    for m in models:
        for b in batches:
            key = (m, b)
            e_name = max((n for n in res[key] if n.startswith("ember")), key=lambda n: med(key, n))
            e, o = med(key, e_name), med(key, "opencv[default]")
            d = diffs[key]
            ecpu, ocpu = cpu_rate(key, e_name), cpu_rate(key, "opencv[default]")
            print(f"| {m} | {b} | {e:,.1f} | {e_name[6:-1]} | {o:,.1f} | {e / o:.2f}x | {ecpu:,.1f} | {ocpu:,.1f} | "
                  f"{d['ember-opencv']:.2e} | "
                  f"{d['ember-torch']:.2e} | {d['opencv-torch']:.2e} | {d['output_scale']:.2f} |")
            table.append({"model": m, "batch": b, "ember": e, "ember_tuning": e_name, "opencv": o,
                          "ember_per_cpu_s": ecpu, "opencv_per_cpu_s": ocpu, "opencv_file": opencv_files[m], **d})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "backends": infos, "table": table,
                       "runs": {f"{m}/{b}": v for (m, b), v in res.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
