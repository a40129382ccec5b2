#!/usr/bin/python3
"""Where each workload's time goes: `perf record` of ember_workloads, samples grouped into the GEMM
micro-kernels, the GEMM's packing, and the memory-bound rest (im2col/col2im, BatchNorm, pooling, ReLU, Dropout,
SGD, memset/memcpy, OpenMP waiting), printed as a Markdown table.

    /usr/bin/python3 benchmarks/compare/profile.py [--build build-bench] [--seconds 3] [--threads 2]
        [WORKLOAD ...]

Needs `perf` (Debian: linux-perf) and permission to sample (perf_event_paranoid <= 2 for one's own process).
Symbols are matched by name, so the groups follow the kernels' names (kernels/*.hpp); what matches no group is
"rest". "OpenMP wait" is libgomp's own code: the spin of a thread that waits for the other at a barrier.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKLOADS = ["mlp_train_32", "mlp_train_4", "cnn_train_32", "cnn_infer_1000"]
# (group, pattern on "dso symbol"), first match wins.
GROUPS = [
    ("GEMM kernels", r"kernels::(avx512|avx2|portable)::(tile|dots)|kernels::gemm_packed|tile_rows|dots_rows"),
    ("GEMM packing", r"transpose_block|pack_a|pack_b|gemm_pack_a"),
    ("im2col / col2im", r"copy_window|add_window|im2col|col2im"),
    ("BatchNorm", r"[Bb]atch[Nn]orm"),
    ("pooling", r"[Pp]ool"),
    ("ReLU", r"[Rr]e[Ll][Uu]|relu_mask"),
    ("Dropout", r"Dropout|dropout"),
    ("SGD", r"SGD|optim::"),
    ("memset / memcpy", r"__mem(set|move|cpy)|mem(set|move|cpy)@plt"),
    ("OpenMP wait", r"^libgomp"),
]


def profile(exe, workload, seconds, threads):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-q", "-o", data, exe, workload, "--seconds", str(seconds), "--threads",
                        str(threads)], check=True, capture_output=True)
        report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol",
                                 "--stdio", "--percent-limit", "0"], check=True, capture_output=True,
                                text=True).stdout
    shares = {name: 0.0 for name, _ in GROUPS}
    shares["rest"] = 0.0
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        key = dso + " " + sym
        for name, pattern in GROUPS:
            if re.search(pattern, key if pattern.startswith("^") else sym):
                shares[name] += pct
                break
        else:
            shares["rest"] += pct
    return shares


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*", default=WORKLOADS)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    exe = os.path.join(args.build, "benchmarks", "ember_workloads")
    if not os.path.exists(exe):
        sys.exit(f"profile: {exe} not found; build it with scripts/bench-setup.sh")
    names = [name for name, _ in GROUPS] + ["rest"]
    print(f"perf record of ember_workloads WORKLOAD --seconds {args.seconds} --threads {args.threads}; share of "
          "samples (all threads)\n")
    print("| workload | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for w in args.workloads:
        s = profile(exe, w, args.seconds, args.threads)
        print(f"| {w} | " + " | ".join(f"{s[n]:.1f} %" for n in names) + " |", flush=True)


if __name__ == "__main__":
    main()
