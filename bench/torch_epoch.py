#!/usr/bin/python3
"""One training epoch of brisk's mlp or cnn in PyTorch (a current torch from
PyPI in the venv of bench/torch_venv.sh),
same data, batch size, optimizer and normalization as `brisk train`, for
side-by-side timing. Prints one line: model, threads, epoch seconds, test acc.
--bf16 runs the forward and the loss (training and test) under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's counterpart of
`brisk train --method precision:dtype=bf16`.

    $(bench/torch_venv.sh) bench/torch_epoch.py --model cnn --threads 2 [--bf16]
"""
import argparse
import gzip
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(split):
    x = read_idx(os.path.join(DATA, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, f"{split}-labels-idx1-ubyte.gz"))
    x = (torch.tensor(x, dtype=torch.float32).unsqueeze(1) / 255.0 - MEAN) / STD
    return x, torch.tensor(y, dtype=torch.int64)


def model(name):
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn", choices=["mlp", "cnn"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (f32 master weights)")
    args = ap.parse_args()
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    m = model(args.model)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    n = xtr.shape[0] // args.batch_size
    total = 0.0
    for _ in range(args.epochs):
        perm = torch.randperm(xtr.shape[0])
        t0 = time.perf_counter()
        for b in range(n):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            with autocast():
                loss = nn.functional.cross_entropy(m(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        total += time.perf_counter() - t0
    with torch.no_grad(), autocast():
        acc = (m(xte).argmax(1) == yte).float().mean().item()
    print(f"torch {torch.__version__} model {args.model} threads {args.threads} "
          f"precision {'bf16' if args.bf16 else 'f32'} "
          f"epoch_s {total / args.epochs:.2f} test_acc {acc:.4f}")


if __name__ == "__main__":
    main()
