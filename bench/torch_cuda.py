#!/usr/bin/env python3
"""PyTorch eager on the same card, for the side-by-side with bench/cuda.cpp:
GEMM 4096^3 (f32, f16, bf16; cuBLAS through torch), one training step of
brisk's Fashion-MNIST cnn at batch 128 (same layers, SGD with momentum), and
one step of gpt-small at batch 32 x 128 tokens (bench/torch_gpt.py's model,
AdamW; flash/efficient SDPA as PyTorch picks it).
Timed with CUDA events after warm-up; median of the repeats.
    python3 bench/torch_cuda.py [--cnn-only]
"""
import os
import statistics
import sys

import torch
import torch.nn as nn


def timed(fn, reps=50, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    return statistics.median(times)


def main():
    unknown = [a for a in sys.argv[1:] if a != "--cnn-only"]
    if unknown:
        print(f"torch_cuda.py: unknown argument {unknown[0]!r} (known: --cnn-only)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("torch: no CUDA device")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False  # brisk's f32 is exact f32
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__} cuda {torch.version.cuda} on {torch.cuda.get_device_name(0)}")
    n = 4096
    for dt in () if "--cnn-only" in sys.argv[1:] else (torch.float32, torch.float16, torch.bfloat16):
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        ms = timed(lambda: a @ b, reps=20)
        print(f"torch_gemm {str(dt).split('.')[-1]:9s} 4096^3 {ms:8.3f} ms {2 * n**3 / ms / 1e9:8.1f} TFLOP/s")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(128, 1, 28, 28, device="cuda")
    y = torch.randint(0, 10, (128,), device="cuda")
    loss_fn = nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for bench_mode in (False, True):
        torch.backends.cudnn.benchmark = bench_mode
        ms = timed(step, reps=100, warmup=10)
        print(f"torch_cnn_step batch 128 cudnn.benchmark={bench_mode}: {ms:.3f} ms")
    if "--cnn-only" not in sys.argv[1:]:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_gpt import GPT  # the same model as brisk's gpt-small
        torch.manual_seed(0)
        gpt = GPT(256, 128, 4, 4, 128).cuda()
        gopt = torch.optim.AdamW(gpt.parameters(), lr=3e-3, weight_decay=0.1)
        idx = torch.randint(0, 256, (32, 128), device="cuda")
        tgt = torch.randint(0, 256, (32 * 128,), device="cuda")

        def gstep():
            loss = nn.functional.cross_entropy(gpt(idx).reshape(-1, 256), tgt)
            gopt.zero_grad(set_to_none=True)
            loss.backward()
            gopt.step()

        ms = timed(gstep, reps=50, warmup=10)
        print(f"torch_gpt_step gpt-small batch 32x128: {ms:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
