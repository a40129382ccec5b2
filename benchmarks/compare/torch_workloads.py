"""The PyTorch side of compare.py: the same workloads as ember_workloads.cpp, one per process.

    /usr/bin/python3 torch_workloads.py WORKLOAD [--seconds S] [--threads N]

Prints one JSON line {"workload", "images_per_s", "steps", "seconds", "peak_rss_mib", "threads"}.
The models are the report's, written as the report writes them (nn.Module with the layers in order).
"""
import argparse
import json
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
    ap.add_argument("workload")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    w = a.workload
    batch = {"mlp_train_32": 32, "mlp_train_4": 4, "cnn_train_32": 32, "cnn_infer_1000": 1000}[w]
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

    steps, elapsed = timed(a.seconds, step)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"workload": w, "images_per_s": round(steps * batch / elapsed, 1), "steps": steps,
                      "seconds": round(elapsed, 3), "peak_rss_mib": round(rss, 1),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
