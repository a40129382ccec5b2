#!/usr/bin/python3
"""ember against PyTorch on the report's workloads, side by side in one run, and a ratio table.

    /usr/bin/python3 benchmarks/compare/compare.py [--build build-bench] [--build-default build-default]
        [--rounds 3] [--seconds 1.5] [--threads 2] [--workloads w1,w2] [--json out.json]
        [--peers libtorch,dlib,opencv --build-peers build-peers]

Needs: scripts/bench-setup.sh (python3-torch with OpenBLAS), and the target ember_workloads and bench_gemm built
in two trees: --build with -DEMBER_NATIVE=ON (-march=native) and --build-default with default flags (what a
user's find_package build compiles). docs/benchmarks.md has the commands.

What it does, in order:
  1. Records the machine: CPU model, the date, the commit, the load average (again at the end: a figure
     taken on a loaded machine must say so).
  2. Asks PyTorch, from its own process, which BLAS its Linear layers call (where sgemm_ binds), which
     oneDNN it loaded and with which CPU capability it runs, under every tuning. A run on the reference BLAS
     (netlib's libblas3, single-threaded and unblocked) stops here: such ratios mean nothing.
  3. Measures the FP32 FMA peak on 1 and 2 threads (bench_gemm's BM_Peak_FMA), before and after the rounds.
  4. Each round runs every workload in every configuration, each in its own process, alternating: ember
     native and default-flags builds, each as shipped and with OMP_WAIT_POLICY=PASSIVE; PyTorch in each of
     its tunings: OMP_WAIT_POLICY=PASSIVE or OPENBLAS_NUM_THREADS=1, each with this environment's OpenBLAS
     settings, or with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset and ATEN_CPU_CAPABILITY=avx512, and,
     when OpenBLAS then picks no AVX-512 kernel (it does not know every CPU), with OPENBLAS_CORETYPE=SkylakeX.
  5. Prints the median images/s over the rounds, each side at its best tuning (named), the ratio, the share
     of the 2-thread FMA peak, and the default-flags build as a share of the native one.

With --peers, the C++ libraries a C++ user would pick run in the same rounds, each its own program built in
--build-peers (-DEMBER_BUILD_PEER_BENCHMARKS=ON), each at its best tuning (named), in a second table:
  - libtorch (libtorch_workloads): PyTorch's C++ frontend, no Python; tunings OMP_WAIT_POLICY=PASSIVE or
    OPENBLAS_NUM_THREADS=1, with OPENBLAS_CORETYPE=SkylakeX and ATEN_CPU_CAPABILITY=avx512 where OpenBLAS would
    pick no AVX-512 kernel itself, each with and without glibc's malloc kept from returning memory to the
    system (GLIBC_TUNABLES, "+malloc": libtorch's allocator frees its large blocks every step, and glibc then
    unmaps them, so the next step faults the pages in again);
  - dlib (dlib_workloads): dlib's dnn on its BLAS, DLIB_NUM_THREADS=threads; tunings: OpenBLAS's threads as
    they are or OPENBLAS_NUM_THREADS=1, with the environment's OpenBLAS core or SkylakeX;
  - OpenCV (opencv_workloads): cv::dnn on the ONNX file ember exports, inference workloads only.
Before the rounds each peer runs its correctness check (--check: ember's initial weights copied in, outputs
within 1e-4 of ember's, MLP losses equal, its own training's loss falling) on every workload, and its BLAS is
printed; a peer that fails its check, or whose sgemm_ is the reference BLAS, stops the run.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKLOADS = ["mlp_train_32", "mlp_train_4", "cnn_train_32", "cnn_infer_1000"]
# ember / PyTorch ratio targets (issue 13).
TARGETS = {"mlp_train_32": None, "mlp_train_4": 4.0, "cnn_train_32": 2.5, "cnn_infer_1000": None}


def mlp_flops(classes, train):
    """Multiply-adds x 2 per image; backward is the weight gradient plus the input gradient (none for layer 1)."""
    dims = [(784, 512), (512, 512), (512, classes)]
    fwd = sum(2 * i * o for i, o in dims)
    return 3 * fwd - 2 * 784 * 512 if train else fwd


def cnn_flops(train):
    # conv1 1->75 on 28x28 (26x26 out), conv2 75->50 on 13x13 (11x11), conv3 50->25 on 5x5 (3x3), fc 100-512-24.
    convs = [2 * 75 * 9 * 676, 2 * 50 * 675 * 121, 2 * 25 * 450 * 9]
    fwd = sum(convs) + 2 * 100 * 512 + 2 * 512 * 24
    return 3 * fwd - convs[0] if train else fwd


FLOPS = {"mlp_train_32": mlp_flops(10, True), "mlp_train_4": mlp_flops(24, True), "cnn_train_32": cnn_flops(True),
         "cnn_infer_1000": cnn_flops(False)}
AVX512_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")


def run(cmd, env_extra, threads, unset=()):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    for v in unset:
        env.pop(v, None)
    env.update(env_extra)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def peak(build, threads):
    """GFLOP/s of BM_Peak_FMA/1 and /threads (real time: both threads' loops at once)."""
    exe = os.path.join(build, "benchmarks", "bench_gemm")
    out = subprocess.run([exe, "--benchmark_filter=BM_Peak_FMA/(1|%d)/" % threads, "--benchmark_format=json",
                          "--benchmark_min_time=0.3"], env=dict(os.environ, EMBER_THREADS=str(threads)),
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        res[int(b["name"].split("/")[1])] = b["GFLOPS"]
    return res


PEER_EXES = {"libtorch": "libtorch_workloads", "dlib": "dlib_workloads", "opencv": "opencv_workloads"}
PEER_WORKLOADS = {"opencv": ("cnn_infer_1000", "mlp_infer_1000")}  # inference only
# glibc keeps freed memory: no mmap for large blocks (their threshold cannot go above 32 MiB, and a step's
# activations at batch 1000 are larger), no trimming of the heap's top.
MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"


def peer_tunings(peer, threads, avx512_core):
    """A peer's knobs, as (name, env to set, env to unset)."""
    core = {} if avx512_core else {"OPENBLAS_CORETYPE": "SkylakeX"}
    core_name = "" if avx512_core else "+skylakex"
    if peer == "libtorch":
        out = []
        for n, e in [("passive", {"OMP_WAIT_POLICY": "PASSIVE"}), ("blas1", {"OPENBLAS_NUM_THREADS": "1"})]:
            e = dict(e, ATEN_CPU_CAPABILITY="avx512", **core)
            out.append((n + core_name + "+avx512", e, ()))
            out.append((n + core_name + "+avx512+malloc", dict(e, GLIBC_TUNABLES=MALLOC_TUNABLES), ()))
        return out
    if peer == "dlib":
        base = {"DLIB_NUM_THREADS": str(threads)}
        out = [("default", base, ()), ("blas1", dict(base, OPENBLAS_NUM_THREADS="1"), ())]
        if core:
            out += [("default" + core_name, dict(base, **core), ()),
                    ("blas1" + core_name, dict(base, OPENBLAS_NUM_THREADS="1", **core), ())]
        return out
    return [("default", {}, ())]


def torch_tunings(threads):
    """PyTorch's knobs, as (name, env to set, env to unset); the OpenBLAS-default ones first."""
    base = [("passive", {"OMP_WAIT_POLICY": "PASSIVE"}), ("blas1", {"OPENBLAS_NUM_THREADS": "1"})]
    unset = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    out = [(n + "+env", e, ()) for n, e in base]
    out += [(n + "+unset+avx512", dict(e, ATEN_CPU_CAPABILITY="avx512"), unset) for n, e in base]
    info = run(["/usr/bin/python3", os.path.join(HERE, "torch_workloads.py"), "--info"],
               {"ATEN_CPU_CAPABILITY": "avx512"}, threads, unset)
    if info.get("openblas_core") not in AVX512_CORES:
        out += [(n + "+skylakex+avx512", dict(e, ATEN_CPU_CAPABILITY="avx512", OPENBLAS_CORETYPE="SkylakeX"), unset)
                for n, e in base]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--build-default", default=os.path.join(ROOT, "build-default"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--json", help="also write every run here")
    ap.add_argument("--peers", default="", help="comma-separated: libtorch, dlib, opencv (or all)")
    ap.add_argument("--build-peers", default=os.path.join(ROOT, "build-peers"),
                    help="the tree configured with -DEMBER_BUILD_PEER_BENCHMARKS=ON")
    a = ap.parse_args()
    peers = list(PEER_EXES) if a.peers == "all" else [p for p in a.peers.split(",") if p]
    for p in peers:
        if p not in PEER_EXES:
            sys.exit(f"compare.py: unknown peer '{p}' (libtorch, dlib, opencv)")
        if not os.path.exists(os.path.join(a.build_peers, "benchmarks", PEER_EXES[p])):
            sys.exit(f"compare.py: {a.build_peers}/benchmarks/{PEER_EXES[p]} not found; configure {a.build_peers} "
                     f"with -DEMBER_BUILD_PEER_BENCHMARKS=ON and build it (docs/benchmarks.md)")
    builds = {"native": a.build, "default": a.build_default}
    for name, b in builds.items():
        for exe in ("ember_workloads", "bench_gemm"):
            if not os.path.exists(os.path.join(b, "benchmarks", exe)):
                sys.exit(f"compare.py: {b}/benchmarks/{exe} not found; build the {name} tree first "
                         "(docs/benchmarks.md)")
    if subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode != 0:
        sys.exit("compare.py: /usr/bin/python3 has no torch; run scripts/bench-setup.sh")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    meta = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(),
            "cores": os.cpu_count(), "commit": commit, "threads": a.threads, "load_start": load()}
    print(f"{meta['date']}  {meta['cpu']}, {meta['cores']} CPUs  commit {commit}  threads {a.threads}  "
          f"load average at start {meta['load_start']}")

    tunings = torch_tunings(a.threads)
    backends = {}
    for name, env, unset in tunings:
        info = run(["/usr/bin/python3", os.path.join(HERE, "torch_workloads.py"), "--info"], env, a.threads, unset)
        backends[name] = info
        print(f"torch[{name}]: torch {info['torch']}, BLAS {info['blas']} ({info['sgemm_from']}; "
              f"{info.get('openblas_config', '-')}; core {info.get('openblas_core', '-')}, "
              f"{info.get('openblas_threads', '-')} threads), oneDNN {info['onednn']}, "
              f"CPU capability {info['cpu_capability']}, env {info['env']}")
        if info["blas"] == "reference":
            sys.exit("compare.py: PyTorch's sgemm_ comes from the reference BLAS (netlib libblas3): its Linear "
                     "layers would run 10-20x slower than PyTorch really does, and any ratio would be void. "
                     "Run scripts/bench-setup.sh (libopenblas0-pthread).")
    workloads = a.workloads.split(",")
    avx512_core = backends[tunings[0][0]].get("openblas_core") in AVX512_CORES or any(
        t[0].endswith("+unset+avx512") and backends[t[0]].get("openblas_core") in AVX512_CORES for t in tunings)
    peer_runs = {}  # peer -> [(tuning name, env, unset)]
    checks = {}
    for p in peers:
        exe = os.path.join(a.build_peers, "benchmarks", PEER_EXES[p])
        peer_runs[p] = peer_tunings(p, a.threads, avx512_core)
        for w in workloads:
            if w not in PEER_WORKLOADS.get(p, WORKLOADS + ["mlp_infer_1000"]):
                continue
            env = dict(peer_runs[p][0][1])
            proc = subprocess.run([exe, w, "--check", "--threads", str(a.threads)], capture_output=True, text=True,
                                  env=dict(os.environ, OMP_NUM_THREADS=str(a.threads), **env))
            try:
                c = json.loads(proc.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                sys.exit(f"compare.py: {p} --check on {w} failed: {proc.stderr.strip()[-500:]}")
            checks[f"{p}/{w}"] = c
            b = c["backend"]
            blas = f"BLAS {b.get('blas', '-')} ({b.get('sgemm_from', '-')}; {b.get('openblas_config', '-')}; " \
                   f"core {b.get('openblas_core', '-')})"
            extra = {"libtorch": lambda: f"oneDNN {b['onednn']}, CPU capability {b['cpu_capability']}",
                     "dlib": lambda: f"dlib threads {b['dlib_threads']}",
                     "opencv": lambda: f"{b['dnn_backend']}/{b['dnn_target']}, {b['cv_threads']} threads, "
                                       f"parallel {b['parallel']}, {b['cpu']}"}[p]()
            print(f"{p} {b['version']} check on {w}: {json.dumps(c['check'])}; {blas}; {extra}")
            if not c["check"]["ok"] or proc.returncode != 0:
                sys.exit(f"compare.py: {p} computes something else than ember on {w} (above): its figures would "
                         "time a wrong computation")
            if b.get("blas") == "reference":
                sys.exit(f"compare.py: {p}'s sgemm_ comes from the reference BLAS (netlib libblas3): its figures "
                         "would be void. Run scripts/bench-setup.sh (libopenblas0-pthread).")
    ember_tunings = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
    peaks = [peak(a.build, a.threads)]
    print(f"FMA peak: {peaks[0][1]:.1f} GFLOP/s on 1 thread, {peaks[0][a.threads]:.1f} on {a.threads}")

    res = {w: {} for w in workloads}
    for r in range(a.rounds):
        for w in workloads:
            line = f"round {r + 1} {w:15s}"
            for bname, bdir in builds.items():
                for t, env in ember_tunings.items():
                    e = run([os.path.join(bdir, "benchmarks", "ember_workloads"), w, "--seconds", str(a.seconds),
                             "--threads", str(a.threads)], env, a.threads)
                    res[w].setdefault(f"ember-{bname}[{t}]", []).append(e)
                    line += f"  {bname}[{t}] {e['images_per_s']:.0f} ({e['isa']})"
            for name, env, unset in tunings:
                p = run(["/usr/bin/python3", os.path.join(HERE, "torch_workloads.py"), w, "--seconds",
                         str(a.seconds), "--threads", str(a.threads)], env, a.threads, unset)
                res[w].setdefault(f"torch[{name}]", []).append(p)
                line += f"  torch[{name}] {p['images_per_s']:.0f}"
            for peer in peers:
                if w not in PEER_WORKLOADS.get(peer, WORKLOADS + ["mlp_infer_1000"]):
                    continue
                for name, env, unset in peer_runs[peer]:
                    p = run([os.path.join(a.build_peers, "benchmarks", PEER_EXES[peer]), w, "--seconds",
                             str(a.seconds), "--threads", str(a.threads)], env, a.threads, unset)
                    res[w].setdefault(f"{peer}[{name}]", []).append(p)
                    line += f"  {peer}[{name}] {p['images_per_s']:.0f}"
            print(line, flush=True)
    peaks.append(peak(a.build, a.threads))
    meta["load_end"] = load()
    pk1 = max(p[1] for p in peaks)
    pkn = max(p[a.threads] for p in peaks)

    def med(key, w):
        return statistics.median(x["images_per_s"] for x in res[w][key])

    def best(prefix, w):
        k = max((k for k in res[w] if k.startswith(prefix)), key=lambda k: med(k, w))
        return med(k, w), k[len(prefix):].strip("[]")

    print()
    print(f"{meta['date']}, {meta['cpu']}, commit {commit}, {a.threads} threads, median of {a.rounds} rounds of "
          f"{a.seconds} s; load average {meta['load_start']} at start, {meta['load_end']} at end")
    print(f"FMA peak (BM_Peak_FMA, same run, best of before/after): {pk1:.1f} GFLOP/s on 1 thread, "
          f"{pkn:.1f} on {a.threads}")
    hdr = ("| workload | PyTorch img/s | PyTorch tuning | ember native img/s | ember tuning | ratio | target | "
           "share of peak | ember default-flags img/s | default / native |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    table = []
    for w in workloads:
        p, pt = best("torch", w)
        en, et = best("ember-native", w)
        ed, _ = best("ember-default", w)
        share = en * FLOPS[w] / (pkn * 1e9)
        tgt = TARGETS[w]
        print(f"| {w} | {p:,.0f} | {pt} | {en:,.0f} | {et} | {en / p:.2f}x | {'%.1fx' % tgt if tgt else '-'} | "
              f"{100 * share:.0f} % | {ed:,.0f} | {ed / en:.2f} |")
        table.append({"workload": w, "torch": p, "torch_tuning": pt, "ember_native": en, "ember_tuning": et,
                      "ember_default": ed, "ratio": en / p, "share_of_peak": share})
    peer_table = []
    if peers:
        names = {"libtorch": "libtorch", "dlib": "dlib", "opencv": "OpenCV dnn"}
        print()
        hdr = "| workload | ember native img/s |" + "".join(
            f" {names[p]} img/s | {names[p]} tuning | ember / {names[p]} |" for p in peers) + " PyTorch (Python) img/s |"
        print(hdr)
        print("|" + "---|" * (hdr.count("|") - 1))
        for w in workloads:
            en, _ = best("ember-native", w)
            row = {"workload": w, "ember_native": en}
            line = f"| {w} | {en:,.0f} |"
            for p in peers:
                if not any(k.startswith(p + "[") for k in res[w]):
                    line += " - | - | - |"
                    continue
                v, t = best(p, w)
                row[p], row[p + "_tuning"] = v, t
                line += f" {v:,.0f} | {t} | {en / v:.2f}x |"
            line += f" {best('torch', w)[0]:,.0f} |"
            print(line)
            peer_table.append(row)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "peaks": [{str(k): v for k, v in p.items()} for p in peaks],
                       "backends": backends, "table": table, "peer_table": peer_table, "peer_checks": checks,
                       "runs": res}, f, indent=1)


if __name__ == "__main__":
    main()
