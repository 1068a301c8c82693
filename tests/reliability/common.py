"""Helpers shared by the reliability tests: small IDX datasets, safetensors
files read and rewritten as dicts, and running the brisk binary with a time
limit so that a hang fails the test instead of stalling CI."""
import gzip
import json
import os
import random
import struct
import subprocess


def write_idx(path, dims, data=None, magic_type=0x08):
    """An IDX file of unsigned bytes: header with `dims`, then `data` (random
    bytes of the declared size when None)."""
    n = 1
    for d in dims:
        n *= d
    if data is None:
        rng = random.Random(len(dims) * 1000 + n)
        data = bytes(rng.randrange(256) for _ in range(n))
    with open(path, "wb") as f:
        f.write(bytes([0, 0, magic_type, len(dims)]))
        for d in dims:
            f.write(struct.pack(">I", d))
        f.write(data)


def make_dataset(folder, n_train=256, n_test=64, hw=(28, 28), test_hw=None, max_label=9):
    """A Fashion-MNIST-shaped folder of IDX files (images random, labels in
    [0, max_label]); test images may have another size."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(7)
    for split, n, size in (("train", n_train, hw), ("t10k", n_test, test_hw or hw)):
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte"), [n, size[0], size[1]])
        labels = bytes(rng.randrange(max_label + 1) for _ in range(n))
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte"), [n], labels)
    return folder


def read_safetensors(path):
    """(header dict, data bytes)."""
    raw = open(path, "rb").read()
    hl = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + hl]), raw[8 + hl :]


def write_safetensors_raw(path, header_text, data):
    h = header_text.encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(data)


def run(binary, args, timeout=120, env=None, cwd=None):
    """Runs brisk; returns (rc, stdout, stderr). A time-out is reported as
    rc None (a hang)."""
    e = dict(os.environ)
    e.update(env or {})
    try:
        p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
