#!/usr/bin/env python3
"""Turns the runs of scripts/reproduce.sh into the markdown tables of docs/results.md.

usage: python3 scripts/summarize_results.py [RUNS_DIR]      (default runs/results)
Standard library only. For every experiment and head: mean +- std over the seeds found of the accuracy of the
checkpoint with the lowest validation loss (the report's protocol), the accuracy after the last epoch, and
(MNIST) after epochs 5 and 10; plus seconds per epoch, threads and the classes the best model ever predicts.
"""
import csv
import json
import os
import re
import statistics
import sys
from collections import defaultdict

runs = sys.argv[1] if len(sys.argv) > 1 else "runs/results"
REPORT = {"mnist_mlp": "0.951 (5 epochs), 0.971 (10 epochs)", "asl_mlp": "0.4052", "asl_mlp-bs32": "0.25",
          "asl_cnn": "0.9632", "asl_cnn_augment": "0.78"}
DEFAULT_HEAD = {"mnist_mlp": "logits", "asl_mlp": "softmax", "asl_mlp-bs32": "softmax", "asl_cnn": "softmax",
                "asl_cnn_augment": "softmax"}

groups = defaultdict(list)
for name in sorted(os.listdir(runs)):
    m = re.fullmatch(r"(.+)-(softmax|logits)-seed(\d+)", name)
    path = os.path.join(runs, name)
    if not m or not os.path.isfile(os.path.join(path, "summary.json")):
        continue
    with open(os.path.join(path, "summary.json")) as f:
        s = json.load(f)
    with open(os.path.join(path, "history.csv")) as f:
        s["history"] = list(csv.DictReader(f))
    s["seed_dir"] = name
    groups[(m.group(1), m.group(2))].append(s)


def stat(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f} (1 seed)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} ({len(values)} seeds)"


def at_epoch(s, e):
    h = s["history"]
    return float(h[e - 1]["val_accuracy"]) if len(h) >= e else None


for exp in ["mnist_mlp", "asl_mlp", "asl_mlp-bs32", "asl_cnn", "asl_cnn_augment"]:
    heads = [h for h in ("softmax", "logits") if (exp, h) in groups]
    if not heads:
        continue
    print(f"### {exp}\n")
    print(f"Report: {REPORT[exp]}. Default head: {DEFAULT_HEAD[exp]}.\n")
    print("| head | best-val-loss accuracy | final accuracy | " +
          ("epoch 5 | epoch 10 | " if exp == "mnist_mlp" else "") +
          "best epoch | classes predicted | epochs | batch | s/epoch | threads |")
    print("|---|---|---|" + ("---|---|" if exp == "mnist_mlp" else "") + "---|---|---|---|---|---|")
    for h in heads:
        g = groups[(exp, h)]
        row = [h, stat([s["best_val_accuracy"] for s in g]), stat([s["final_val_accuracy"] for s in g])]
        if exp == "mnist_mlp":
            row += [stat([v for v in (at_epoch(s, 5) for s in g) if v is not None]),
                    stat([v for v in (at_epoch(s, 10) for s in g) if v is not None])]
        row += [", ".join(str(s["best_epoch"]) for s in g),
                ", ".join(str(s.get("classes_predicted", "-")) for s in g),
                str(g[0]["epochs"]), str(g[0]["batch_size"]),
                f"{statistics.mean(s['seconds_per_epoch'] for s in g):.1f}", str(g[0]["threads"])]
        print("| " + " | ".join(row) + " |")
    print()
