"""f32 GEMM throughput of a current PyTorch from PyPI (torch.mm: MKL on x86),
the peer of brisk_bench_gemm's native and OpenBLAS rows. Prints one line per
size: n, median GFLOP/s of `reps` timed products and their range.

    $(bench/torch_venv.sh) bench/torch_gemm.py --threads 2 --sizes 1024 2048
"""
import argparse
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    if args.threads < 1 or args.reps < 1 or any(n < 1 for n in args.sizes):
        ap.error("threads, reps and sizes must be positive")
    torch.set_num_threads(args.threads)
    for n in args.sizes:
        a, b = torch.rand(n, n), torch.rand(n, n)
        c = torch.mm(a, b)  # warm-up
        rates = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            rates.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
        print(f"torch {torch.__version__} mm n {n} threads {args.threads} "
              f"gflops {statistics.median(rates):.1f} min {min(rates):.1f} max {max(rates):.1f}")


if __name__ == "__main__":
    main()
