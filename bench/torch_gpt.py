#!/usr/bin/env python3
"""The PyTorch peer of brisk's GPT recipe (recipes/baseline_gpt.toml): the same
model (models/gpt.h: pre-LN blocks, exact GELU, learned positions, tied head,
GPT-2 init), the same KJV split read from brisk's token cache, the same
windows (block+1 tokens stepping by block), AdamW with decay on matrices only,
gradient clipping, and brisk's warmup + cosine schedule step for step. Prints
one line: tokens_per_s (training only), val_loss (per token, whole validation
split) and train seconds.
    $(bench/torch_venv.sh) bench/torch_gpt.py --threads 2 --steps 300
"""
import argparse
import math
import os
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def load_cache(path):
    with open(path, "rb") as f:
        head = f.read(40)
        magic, version, vocab, n, val_start, _ = struct.unpack("<8sIIQQQ", head)
        assert magic == b"BRISKTOK" and version == 1 and vocab == 256, f"{path}: not a brisk token cache"
        data = f.read(n)
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)
    return t[:val_start], t[val_start:]


def windows(tokens, T):
    n = (tokens.numel() - 1) // T
    idx = torch.arange(n).unsqueeze(1) * T + torch.arange(T + 1).unsqueeze(0)
    return tokens[idx]  # [n, T + 1]


class Block(nn.Module):
    def __init__(self, E, H):
        super().__init__()
        self.H = H
        self.ln_1, self.ln_2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.c_attn, self.attn_proj = nn.Linear(E, 3 * E), nn.Linear(E, E)
        self.c_fc, self.mlp_proj = nn.Linear(E, 4 * E), nn.Linear(4 * E, E)

    def forward(self, x):
        B, T, E = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(E, dim=2)
        q, k, v = (t.view(B, T, self.H, E // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, E))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, V, T, L, H, E):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, E), nn.Embedding(T, E)
        self.h = nn.ModuleList([Block(E, H) for _ in range(L)])
        self.ln_f = nn.LayerNorm(E)
        for name, p in self.named_parameters():
            if "ln_" in name:
                continue
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0, std)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.h:
            x = b(x)
        return F.linear(self.ln_f(x), self.wte.weight)


def lr_at(s, base, total, warmup):  # brisk's optim/schedule.cpp, cosine kind
    s = min(max(s, 0), total)
    if s < warmup:
        return base * (s + 1) / warmup
    frac = (s - warmup) / max(total - warmup, 1)
    return 0.5 * base * (1 + math.cos(math.pi * frac))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(os.environ.get("BRISK_CACHE_DIR") or
                                                    os.path.expanduser("~/.cache/brisk"), "kjv.tokens"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: the whole budget)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup-epochs", type=float, default=0.05)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip-grad", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train, val = load_cache(a.cache)
    tw, vw = windows(train, a.block_size), windows(val, a.block_size)
    model = GPT(256, a.block_size, a.n_layer, a.n_head, a.n_embd)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    per_epoch = tw.shape[0] // a.batch_size
    total = a.epochs * per_epoch
    warmup = min(total, int(a.warmup_epochs * per_epoch))
    stop = a.steps or total
    g = torch.Generator().manual_seed(a.seed)
    step, train_s = 0, 0.0
    while step < stop:
        order = torch.randperm(tw.shape[0], generator=g)
        for b in range(per_epoch):
            if step >= stop:
                break
            t0 = time.perf_counter()
            batch = tw[order[b * a.batch_size:(b + 1) * a.batch_size]]
            x, y = batch[:, :-1], batch[:, 1:]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, a.lr, total, warmup)
            loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if a.clip_grad > 0:
                nn.utils.clip_grad_norm_(model.parameters(), a.clip_grad)
            opt.step()
            train_s += time.perf_counter() - t0
            step += 1
    model.eval()
    with torch.no_grad():
        tot, n = 0.0, 0
        for i in range(0, vw.shape[0], 64):
            w = vw[i:i + 64]
            tot += F.cross_entropy(model(w[:, :-1]).reshape(-1, 256), w[:, 1:].reshape(-1), reduction="sum").item()
            n += w[:, 1:].numel()
    print(f"torch {torch.__version__} threads {a.threads} steps {step} train_s {train_s:.2f} "
          f"tokens_per_s {step * a.batch_size * a.block_size / train_s:.0f} val_loss {tot / n:.4f}")


if __name__ == "__main__":
    main()
