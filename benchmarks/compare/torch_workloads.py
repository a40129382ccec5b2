"""The PyTorch side of compare.py: the same workloads as ember_workloads.cpp, one per process.

    /usr/bin/python3 torch_workloads.py WORKLOAD [--seconds S] [--threads N]
    /usr/bin/python3 torch_workloads.py --info

Prints one JSON line {"workload", "images_per_s", "steps", "seconds", "peak_rss_mib", "threads", "backend"}.
"backend" is what this very process loaded and runs with (see backend_info): compare.py refuses a ratio
against the reference BLAS. --info prints only that. The models are the report's, written as the report writes
them (nn.Module with the layers in order).
"""
import argparse
import ctypes
import json
import os
import re
import resource
import time

import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, classes, softmax):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, classes)
        self.softmax = nn.Softmax(dim=1) if softmax else None

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        x = self.fc3(x)
        return self.softmax(x) if self.softmax is not None else x


class CNNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 75, 3)
        self.batchnorm1 = nn.BatchNorm2d(75)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(75, 50, 3)
        self.batchnorm2 = nn.BatchNorm2d(50)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(50, 25, 3)
        self.batchnorm3 = nn.BatchNorm2d(25)
        self.pool3 = nn.MaxPool2d(2, 1)
        self.dropout1 = nn.Dropout(0.2)
        self.dropout2 = nn.Dropout(0.3)
        self.fc1 = nn.Linear(100, 512)
        self.fc2 = nn.Linear(512, 24)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.pool1(self.batchnorm1(torch.relu(self.conv1(x))))
        x = self.pool2(self.batchnorm2(self.dropout1(torch.relu(self.conv2(x)))))
        x = self.pool3(self.batchnorm3(torch.relu(self.conv3(x))))
        x = torch.flatten(x, 1)
        x = self.dropout2(torch.relu(self.fc1(x)))
        return self.softmax(self.fc2(x))


TUNING_VARS = ["OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
               "ATEN_CPU_CAPABILITY", "MKL_NUM_THREADS"]


def backend_info():
    """The BLAS and oneDNN this process has mapped, their versions, and the tuning it runs with."""
    # A product through Linear first, so every library the benchmark uses is loaded.
    torch.nn.functional.linear(torch.ones(2, 8), torch.ones(4, 8))
    maps = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                maps.append((lo, hi, os.path.realpath(parts[5])))
    libs = sorted({p for _, _, p in maps
                   if re.search(r"lib(open)?blas|libmkl|libdnnl|libmkldnn|libgomp|libomp", os.path.basename(p))})
    info = {"torch": torch.__version__, "libraries": libs, "blas": "none found"}
    # Which library sgemm_ binds to as libtorch_cpu sees it (its own dependency order): the one Linear calls.
    sgemm_lib = None
    torch_cpu = next((p for _, _, p in maps if os.path.basename(p).startswith("libtorch_cpu")), None)
    if torch_cpu:
        try:
            addr = ctypes.cast(ctypes.CDLL(torch_cpu).sgemm_, ctypes.c_void_p).value
            sgemm_lib = next((p for lo, hi, p in maps if lo <= addr < hi), None)
        except (OSError, AttributeError):
            pass
    info["sgemm_from"] = sgemm_lib or "?"
    if sgemm_lib:
        name = os.path.basename(sgemm_lib)
        if "openblas" in sgemm_lib:
            info["blas"] = "openblas"
        elif "mkl" in name:
            info["blas"] = "mkl"
        elif name.startswith("libblas"):
            info["blas"] = "reference"  # netlib's libblas3: single-threaded, unblocked
    for p in libs:
        if "libopenblas" in os.path.basename(p) and info["blas"] == "openblas":
            try:
                lib = ctypes.CDLL(p)
                lib.openblas_get_config.restype = ctypes.c_char_p
                lib.openblas_get_corename.restype = ctypes.c_char_p
                info["openblas_config"] = lib.openblas_get_config().decode()
                info["openblas_core"] = lib.openblas_get_corename().decode()
                info["openblas_threads"] = lib.openblas_get_num_threads()
            except (OSError, AttributeError):
                pass
    cfg = torch.__config__.show()
    m = re.search(r"MKL-DNN (v[0-9.]+)", cfg)
    info["onednn"] = m.group(1) if m and torch.backends.mkldnn.is_available() else "off"
    m = re.search(r"CPU capability usage: (\S+)", cfg)
    info["cpu_capability"] = m.group(1) if m else "?"
    info["env"] = {v: os.environ[v] for v in TUNING_VARS if v in os.environ}
    return info


def timed(seconds, step):
    for _ in range(5):
        step()
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return steps, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="?")
    ap.add_argument("--info", action="store_true")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=0, help="replaces the workload's batch size")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.info:
        print(json.dumps(backend_info()))
        return
    torch.manual_seed(0)
    w = a.workload
    batch = a.batch or {"mlp_train_32": 32, "mlp_train_4": 4, "cnn_train_32": 32, "cnn_infer_1000": 1000}[w]
    classes = 10 if w == "mlp_train_32" else 24
    model = CNNNet() if w.startswith("cnn") else MLP(classes, softmax=(w == "mlp_train_4"))
    xs = [torch.rand(batch, 1, 28, 28) * 2 - 1 for _ in range(16 if w != "cnn_infer_1000" else 1)]
    ys = [torch.randint(0, classes, (batch,)) for _ in xs]
    if w == "cnn_infer_1000":
        model.eval()

        def step():
            with torch.no_grad():
                model(xs[0])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        it = [0]

        def step():
            i = it[0] % len(xs)
            it[0] += 1
            opt.zero_grad()
            loss = loss_fn(model(xs[i]), ys[i])
            loss.backward()
            opt.step()

    cpu0 = time.process_time()
    steps, elapsed = timed(a.seconds, step)
    cpu = time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"workload": w, "batch": batch, "images_per_s": round(steps * batch / elapsed, 1), "steps": steps,
                      "seconds": round(elapsed, 3), "cpu_seconds": round(cpu, 3), "peak_rss_mib": round(rss, 1),
                      "threads": torch.get_num_threads(), "backend": backend_info()}))


if __name__ == "__main__":
    main()
