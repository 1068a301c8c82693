#!/usr/bin/python3
"""Writes tests/data/golden_cnn.safetensors: PyTorch's reference for the brisk
cnn (llm.c-style golden test). Contents: the initial weights ("param/<name>"),
one batch of Fashion-MNIST test images normalized like brisk ("x", [8,1,28,28])
and labels ("y"), the logits, the mean cross-entropy loss, and every parameter
gradient ("grad/<name>").

Run once with Debian's python3-torch and commit the output:
    /usr/bin/python3 bench/golden_cnn.py
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "golden_cnn.safetensors")
MEAN, STD = 0.2860, 0.3530  # brisk's data/dataset.cpp


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def save_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().contiguous().cpu().numpy()
        b = a.tobytes()
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def main():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    images = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"))[:8]
    labels = read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"))[:8]
    x = (torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0 - MEAN) / STD
    y = torch.tensor(labels, dtype=torch.int64)
    out = {"x": x, "y": y}
    for name, p in model.named_parameters():
        out["param/" + name] = p.detach().clone()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y)
    loss.backward()
    out["logits"] = logits
    out["loss"] = loss.reshape(1)
    for name, p in model.named_parameters():
        out["grad/" + name] = p.grad
    save_safetensors(OUT, out)
    print(f"wrote {OUT}: loss {loss.item():.6f}, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
