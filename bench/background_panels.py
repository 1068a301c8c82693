#!/usr/bin/python3
"""How many of the mlp's GEMM products could a dense GEMM kernel skip exactly,
if it skipped a k only where its whole register panel holds zeros?
(bench/background_skip.cpp times such a tile, "six", beside sparse ones.)

A 6 x 16 tile kernel (sgemm on AVX2) broadcasts MR = 6 values of its A panel
per k and loads NR = 16 of its B panel: it can drop a k where all six A values
(or all sixteen B values) are zero and keep its tile dense. Zeros come from
  - the input's background: the loader maps Fashion-MNIST's 0 pixels to one
    value c, so X = c + S with S zero there, and X W^T = S W^T + c 1 colsum(W^T);
  - ReLU: the hidden activations H and the gradients dZ = dH * (Z > 0).
Counted on real batches of 128 of a model trained one epoch (the recipe of
bench/torch_epoch.py), for each product in the kernel's orientation:
  fc1 forward      S W1^T     A = S, panels of 6 images, k = pixels
  fc2 forward      H1 W2^T    A = H1, panels of 6 images, k = units
  fc2 input grad   dZ2 W2     A = dZ2, panels of 6 images, k = units
  fc2 weight grad  dZ2^T H1   A = dZ2^T (6 units), B = H1 (16 units), k = images
  fc1 weight grad  dZ1^T S    A = dZ1^T (6 units), B = S (16 pixels), k = images
                   S^T dZ1    A = S^T (6 pixels), B = dZ1 (16 units): C = dW1^T
with the batch in the loader's order and with its rows sorted by label (a
minibatch is a set: the loss is the same sum; images of one class share
background and active units). Prints each product's skippable fraction of
multiply-adds and what that is of the step's GEMM multiply-adds.

    $(bench/torch_venv.sh) bench/background_panels.py [--batches 40] [--seed 0]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_epoch import MEAN, STD, load, model  # noqa: E402

MR, NR = 6, 16


def skipped(a, b):
    """a [M, K] (broadcast side, panels of MR rows), b [K, N] (loaded side,
    panels of NR columns): the fraction of the M * N * K multiply-adds whose
    k is all zero in its A panel or in its B panel."""
    m, k = a.shape
    n = b.shape[1]
    az = np.stack([(a[p:p + MR] == 0).all(0) for p in range(0, m, MR)])   # [m / MR, K]
    aw = np.array([min(MR, m - p) for p in range(0, m, MR)])
    bz = np.stack([(b[:, p:p + NR] == 0).all(1) for p in range(0, n, NR)])  # [n / NR, K]
    bw = np.array([min(NR, n - p) for p in range(0, n, NR)])
    kept = (~az).astype(np.int64) * aw[:, None]   # per A panel and k: rows that multiply
    keptb = (~bz).astype(np.int64) * bw[:, None]  # per B panel and k: columns that multiply
    return 1.0 - float((kept @ keptb.T).sum()) / (m * n * k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 1 <= args.batches <= 468:
        ap.error("--batches must be in [1, 468]")
    if not 0 <= args.seed < 2 ** 63:
        ap.error("--seed must be in [0, 2^63)")
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    xtr, ytr = load("train")
    m = model("mlp")
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    perm = torch.randperm(xtr.shape[0])
    for b in range(468):  # one epoch, as bench/torch_epoch.py
        idx = perm[b * 128:(b + 1) * 128]
        loss = nn.functional.cross_entropy(m(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    fc1, fc2, fc3 = m[1], m[3], m[5]
    c = -MEAN / STD
    macs = {"fc1 forward": 784 * 512, "fc2 forward": 512 * 256, "fc2 input grad": 512 * 256,
            "fc2 weight grad": 512 * 256, "fc1 weight grad (dZ1^T S)": 784 * 512,
            "fc1 weight grad (S^T dZ1)": 784 * 512}
    res = {order: {k: [] for k in macs} for order in ("loader", "sorted")}
    perm = torch.randperm(xtr.shape[0])
    for b in range(args.batches):
        idx = perm[b * 128:(b + 1) * 128]
        for order in ("loader", "sorted"):
            ix = idx[torch.argsort(ytr[idx], stable=True)] if order == "sorted" else idx
            x = xtr[ix].reshape(-1, 784)
            s = (x - c).numpy()
            s[np.abs(s) < 1e-6] = 0  # the background, exactly
            z1 = fc1(x)
            z1.retain_grad()
            h1 = torch.relu(z1)
            z2 = fc2(h1)
            z2.retain_grad()
            loss = nn.functional.cross_entropy(fc3(torch.relu(z2)), ytr[ix])
            loss.backward()
            h1n, dz1, dz2 = h1.detach().numpy(), z1.grad.numpy(), z2.grad.numpy()
            w1, w2 = fc1.weight.detach().numpy(), fc2.weight.detach().numpy()
            r = res[order]
            r["fc1 forward"].append(skipped(s, w1.T))
            r["fc2 forward"].append(skipped(h1n, w2.T))
            r["fc2 input grad"].append(skipped(dz2, w2))
            r["fc2 weight grad"].append(skipped(dz2.T, h1n))
            r["fc1 weight grad (dZ1^T S)"].append(skipped(dz1.T, s))
            r["fc1 weight grad (S^T dZ1)"].append(skipped(s.T, dz1))
    total = 2 * 784 * 512 + 3 * 512 * 256 + 3 * 256 * 10  # the step's GEMM multiply-adds per image
    print(f"one epoch trained (seed {args.seed}), then {args.batches} batches of 128; "
          f"panels of {MR} (broadcast side) and {NR} (loaded side)")
    print(f"{'product':28s} {'loader order':>22s} {'sorted by label':>22s}")
    share = {}
    for k in macs:
        cells = []
        for order in ("loader", "sorted"):
            v = res[order][k]
            cells.append(f"{np.mean(v):.3f} [{min(v):.3f}, {max(v):.3f}]")
            share.setdefault(order, {})[k] = np.mean(v) * macs[k] / total
        print(f"{k:28s} {cells[0]:>22s} {cells[1]:>22s}")
    for order in ("loader", "sorted"):
        sh = share[order]
        rowmajor = sum(v for k, v in sh.items() if k != "fc1 weight grad (S^T dZ1)")
        best = rowmajor - sh["fc1 weight grad (dZ1^T S)"] + max(sh["fc1 weight grad (dZ1^T S)"],
                                                                sh["fc1 weight grad (S^T dZ1)"])
        print(f"skippable share of the step's GEMM multiply-adds, {order} order: {rowmajor:.3f} "
              f"(C row-major throughout), {best:.3f} (fc1's weight gradient in its better orientation)")


if __name__ == "__main__":
    main()
