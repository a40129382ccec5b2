#!/usr/bin/python3
"""ember against PyTorch on the report's workloads, side by side, and a ratio table.

    /usr/bin/python3 benchmarks/compare/compare.py [--build build-bench] [--rounds 3] [--seconds 3] [--threads 2]

Each round runs every workload once in ember (build/benchmarks/ember_workloads) and once in PyTorch
(torch_workloads.py), alternating, each in its own process so peak RSS is that workload's alone. PyTorch runs
in two tunings: out of the box, and with OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 (its OpenMP and
OpenBLAS threads otherwise fight); the table uses the faster. ember runs as shipped and, for the same
fairness, with OMP_WAIT_POLICY=PASSIVE too (on a machine shared with other work, spinning OpenMP threads steal
the core a descheduled teammate needs); the table names the tuning each side won with. Reported: the median images/s over the rounds,
the ratio ember / PyTorch, and the largest peak RSS seen. Without torch in /usr/bin/python3 the PyTorch side is
skipped with a message.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKLOADS = ["mlp_train_32", "mlp_train_4", "cnn_train_32", "cnn_infer_1000"]
TARGETS = {"mlp_train_32": 1.5, "mlp_train_4": 4.0, "cnn_train_32": 2.5, "cnn_infer_1000": 3.0}
TUNINGS = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}}


def run(cmd, env_extra, threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env.update(env_extra)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def has_torch():
    return subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    a = ap.parse_args()
    ember_bin = os.path.join(a.build, "benchmarks", "ember_workloads")
    if not os.path.exists(ember_bin):
        sys.exit(f"compare.py: {ember_bin} not found; build the target ember_workloads first")
    torch_ok = has_torch()
    if not torch_ok:
        print("compare.py: /usr/bin/python3 has no torch; skipping the PyTorch side (apt-get install python3-torch)")
    workloads = a.workloads.split(",")
    ember_tunings = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
    res = {w: {"ember": {t: [] for t in ember_tunings}, **({t: [] for t in TUNINGS} if torch_ok else {})}
           for w in workloads}
    for r in range(a.rounds):
        for w in workloads:
            line = f"round {r + 1} {w:15s}"
            for t, env in ember_tunings.items():
                e = run([ember_bin, w, "--seconds", str(a.seconds), "--threads", str(a.threads)], env, a.threads)
                res[w]["ember"][t].append(e)
                line += f"  ember[{t}] {e['images_per_s']:10.1f}/s"
            if torch_ok:
                for t, env in TUNINGS.items():
                    p = run(["/usr/bin/python3", os.path.join(HERE, "torch_workloads.py"), w, "--seconds",
                             str(a.seconds), "--threads", str(a.threads)], env, a.threads)
                    res[w][t].append(p)
                    line += f"  torch[{t}] {p['images_per_s']:10.1f}/s"
            print(line, flush=True)

    def med(runs):
        return statistics.median(x["images_per_s"] for x in runs)

    def rss(runs):
        return max(x["peak_rss_mib"] for x in runs)

    print()
    print(f"threads={a.threads} rounds={a.rounds} seconds={a.seconds} (median images/s; peak RSS MiB)")
    hdr = f"| {'workload':15s} | {'ember img/s':>11s} | {'ember tuning':12s} | {'torch img/s':>11s} | {'torch tuning':12s} | {'ratio':>6s} | " \
          f"{'target':>6s} | {'ember RSS':>9s} | {'torch RSS':>9s} |"
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for w in workloads:
        et = max(ember_tunings, key=lambda t: med(res[w]["ember"][t]))
        e, e_rss = med(res[w]["ember"][et]), rss(res[w]["ember"][et])
        if torch_ok:
            best = max(TUNINGS, key=lambda t: med(res[w][t]))
            p = med(res[w][best])
            ratio = e / p
            print(f"| {w:15s} | {e:11.1f} | {et:12s} | {p:11.1f} | {best:12s} | {ratio:6.2f} | {TARGETS[w]:6.1f} | "
                  f"{e_rss:9.1f} | {rss(res[w][best]):9.1f} |")
        else:
            print(f"| {w:15s} | {e:11.1f} | {et:12s} | {'-':>11s} | {'-':12s} | {'-':>6s} | {TARGETS[w]:6.1f} | "
                  f"{e_rss:9.1f} | {'-':>9s} |")


if __name__ == "__main__":
    main()
