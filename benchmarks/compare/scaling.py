#!/usr/bin/python3
"""How ember's cost grows with the work: images/s against the batch size, 1 and 2 threads, both report models,
training and inference; a Markdown table and a plot (PNG, drawn with Pillow).

    /usr/bin/python3 benchmarks/compare/scaling.py [--build build-bench] [--seconds 1] [--rounds 2]
        [--png docs/images/scaling.png] [--json scaling.json]

Each point is the median of --rounds runs of ember_workloads (one process each, alternating over the
configurations); the load average before and after is printed with the table.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BATCHES = [1, 4, 32, 128, 1000]
SERIES = [("MLP training", "mlp_train_32"), ("MLP inference", "mlp_infer_1000"), ("CNN training", "cnn_train_32"),
          ("CNN inference", "cnn_infer_1000")]


def run(exe, workload, batch, threads, seconds):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([exe, workload, "--batch", str(batch), "--threads", str(threads), "--seconds", str(seconds)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


def plot(path, data, title):
    from PIL import Image, ImageDraw
    import math
    w, h, left, right, top, bottom = 900, 560, 80, 200, 40, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    vals = [v for s in data.values() for v in s.values() if v > 0]
    lo, hi = 10 ** math.floor(math.log10(min(vals))), 10 ** math.ceil(math.log10(max(vals)))
    bx = [math.log10(b) for b in BATCHES]

    def xy(b, v):
        x = left + (math.log10(b) - bx[0]) / (bx[-1] - bx[0]) * (w - left - right)
        y = h - bottom - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (h - top - bottom)
        return x, y

    d.rectangle([left, top, w - right, h - bottom], outline="black")
    e = lo
    while e <= hi:
        _, y = xy(1, e)
        d.line([left, y, w - right, y], fill=(220, 220, 220))
        d.text((8, y - 6), f"{e:,.0f}", fill="black")
        e *= 10
    for b in BATCHES:
        x, _ = xy(b, lo)
        d.line([x, top, x, h - bottom], fill=(235, 235, 235))
        d.text((x - 8, h - bottom + 8), str(b), fill="black")
    d.text((left, h - 28), "batch size (log)      images/s (log)", fill="black")
    d.text((left, 12), title, fill="black")
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    for i, (name, series) in enumerate(data.items()):
        col = colours[(i // 2) % 4]
        pts = [xy(b, series[b]) for b in BATCHES if series.get(b, 0) > 0]
        if "2 threads" in name:
            d.line(pts, fill=col, width=3)
        else:
            for a, c in zip(pts, pts[1:]):  # dashed: 1 thread
                for t in range(0, 10, 2):
                    d.line([a[0] + (c[0] - a[0]) * t / 10, a[1] + (c[1] - a[1]) * t / 10,
                            a[0] + (c[0] - a[0]) * (t + 1) / 10, a[1] + (c[1] - a[1]) * (t + 1) / 10],
                           fill=col, width=2)
        for p in pts:
            d.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=col)
        ly = top + 10 + 18 * i
        d.line([w - right + 10, ly + 6, w - right + 35, ly + 6], fill=col, width=3 if "2 threads" in name else 1)
        d.text((w - right + 40, ly), name, fill="black")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    img.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--png", default=os.path.join(ROOT, "docs", "images", "scaling.png"))
    ap.add_argument("--json")
    a = ap.parse_args()
    exe = os.path.join(a.build, "benchmarks", "ember_workloads")
    start = "%.2f %.2f %.2f" % os.getloadavg()
    runs = {}
    for _ in range(a.rounds):
        for _, wl in SERIES:
            for b in BATCHES:
                for t in (1, 2):
                    runs.setdefault((wl, b, t), []).append(run(exe, wl, b, t, a.seconds))
    med = {k: statistics.median(v) for k, v in runs.items()}
    end = "%.2f %.2f %.2f" % os.getloadavg()
    date = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    print(f"{date}, {a.build}, median of {a.rounds} runs of {a.seconds} s; load average {start} at start, {end} at end")
    print("| model | mode | threads | " + " | ".join(f"batch {b}" for b in BATCHES) + " |")
    print("|---|---|---|" + "---|" * len(BATCHES))
    data = {}
    for name, wl in SERIES:
        model, mode = name.split()
        for t in (1, 2):
            print(f"| {model} | {mode} | {t} | " + " | ".join(f"{med[(wl, b, t)]:,.0f}" for b in BATCHES) + " |")
            data[f"{name}, {t} thread{'s' if t > 1 else ''}"] = {b: med[(wl, b, t)] for b in BATCHES}
    plot(a.png, data, f"ember images/s, {date}, load {start} -> {end}")
    print(f"plot: {a.png}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": date, "load": [start, end], "runs": {"%s/%d/%d" % k: v for k, v in runs.items()}}, f)


if __name__ == "__main__":
    main()
