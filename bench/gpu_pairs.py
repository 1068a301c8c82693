#!/usr/bin/env python3
"""The cnn training step on one card, brisk against PyTorch eager, measured
in alternating pairs (the order flips every round) so that drift on a shared
machine falls on both sides alike.
    python3 bench/gpu_pairs.py BRISK_BENCH_CUDA [ROUNDS] [TORCH_SCRIPT]
Each round: brisk's BM_cuda_cnn_step (native GEMM and conv, and cuBLAS GEMM
with native conv), then bench/torch_cuda.py --cnn-only (PyTorch's best of
cudnn.benchmark off and on); prints each pair's ratio, then medians and ranges.
"""
import json
import os
import re
import statistics
import subprocess
import sys


def brisk_ms(binary):
    out = subprocess.run([binary, "--benchmark_filter=BM_cuda_cnn_step/[01]/0", "--benchmark_min_time=0.5",
                          "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
    rows = {b["name"]: b["real_time"] for b in json.loads(out)["benchmarks"]}
    return rows["BM_cuda_cnn_step/0/0/manual_time"], rows["BM_cuda_cnn_step/1/0/manual_time"]


def torch_ms(script):
    out = subprocess.run([sys.executable, script, "--cnn-only"], check=True, capture_output=True, text=True).stdout
    return min(float(m) for m in re.findall(r"torch_cnn_step .*: ([0-9.]+) ms", out))


def main():
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        print("usage: gpu_pairs.py BRISK_BENCH_CUDA [ROUNDS] [TORCH_SCRIPT]", file=sys.stderr)
        return 2
    binary = sys.argv[1]
    try:
        rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    except ValueError:
        rounds = 0
    if rounds < 1 or rounds > 100:
        print(f"gpu_pairs.py: ROUNDS must be an integer in [1, 100], got {sys.argv[2]!r}", file=sys.stderr)
        return 2
    script = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "torch_cuda.py")
    native, cublas, peer = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            b = brisk_ms(binary)
            t = torch_ms(script)
        else:
            t = torch_ms(script)
            b = brisk_ms(binary)
        native.append(b[0])
        cublas.append(b[1])
        peer.append(t)
        print(f"round {r + 1}: brisk native {b[0]:.3f} ms, brisk cuBLAS GEMM {b[1]:.3f} ms, torch {t:.3f} ms, "
              f"torch/brisk native {t / b[0]:.2f}x", flush=True)
    ratios = [t / b for t, b in zip(peer, native)]
    ratios_cublas = [t / b for t, b in zip(peer, cublas)]
    print(f"cnn step, {rounds} pairs: brisk native median {statistics.median(native):.3f} ms, "
          f"torch median {statistics.median(peer):.3f} ms; torch/brisk native median "
          f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]; with cuBLAS GEMM "
          f"{statistics.median(ratios_cublas):.2f}x [{min(ratios_cublas):.2f}, {max(ratios_cublas):.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
