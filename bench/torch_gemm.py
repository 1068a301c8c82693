"""f32 GEMM throughput of a current PyTorch from PyPI (torch.mm: MKL on x86),
the peer of brisk_bench_gemm's native and OpenBLAS rows. Prints one line per
product: its shape, median GFLOP/s of `reps` timings and their range.

    $(bench/torch_venv.sh) bench/torch_gemm.py --threads 2 --sizes 1024 2048
    $(bench/torch_venv.sh) bench/torch_gemm.py --threads 2 --shapes 128x512x784:nt

--sizes n: the square product n x n x n ("n <n>" in the output). --shapes
MxNxK:ab: C[M, N] = A[M, K] @ B[K, N], a and b each n (stored as used) or t
(a transposed view of the stored matrix, as a layer's W^T is), "shape
<MxNxK:ab>" in the output. Given both, both run; given neither, --sizes
1024 2048. A small product is timed over enough calls to take about 20 ms
per timing.
"""
import argparse
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+")
    ap.add_argument("--shapes", nargs="+", default=[], type=parse_shape, metavar="MxNxK:ab")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    if args.sizes is None and not args.shapes:
        args.sizes = [1024, 2048]
    args.sizes = args.sizes or []
    if args.threads < 1 or args.reps < 1 or any(n < 1 for n in args.sizes):
        ap.error("threads, reps and sizes must be positive")
    torch.set_num_threads(args.threads)
    products = [(f"n {n}", n, n, n, "n", "n") for n in args.sizes]
    products += [(f"shape {s[0]}", *s[1:]) for s in args.shapes]
    for label, m, n, k, ta, tb in products:
        a = torch.rand(k, m).t() if ta == "t" else torch.rand(m, k)
        b = torch.rand(n, k).t() if tb == "t" else torch.rand(k, n)
        c = torch.mm(a, b)  # warm-up
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        calls = max(1, min(10000, int(0.02 / max(time.perf_counter() - t0, 1e-7))))
        for _ in range(calls):
            torch.mm(a, b, out=c)
        rates = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            for _ in range(calls):
                torch.mm(a, b, out=c)
            rates.append(2.0 * m * n * k * calls / (time.perf_counter() - t0) / 1e9)
        print(f"torch {torch.__version__} mm {label} threads {args.threads} "
              f"gflops {statistics.median(rates):.1f} min {min(rates):.1f} max {max(rates):.1f}")


def parse_shape(text):
    """'128x512x784:nt' -> (text, 128, 512, 784, 'n', 't')."""
    try:
        dims, ab = text.split(":")
        m, n, k = (int(x) for x in dims.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape '{text}': expected MxNxK:ab, e.g. 128x512x784:nt")
    if min(m, n, k) < 1 or len(ab) != 2 or any(c not in "nt" for c in ab):
        raise argparse.ArgumentTypeError(f"shape '{text}': sides must be positive, a and b each n or t")
    return (text, m, n, k, ab[0], ab[1])


if __name__ == "__main__":
    main()
