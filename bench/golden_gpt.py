#!/usr/bin/env python3
"""Writes tests/data/golden_gpt.safetensors: PyTorch's reference for brisk's
GPT (models/gpt.h), llm.c-style. A 2-layer, 2-head, 32-wide GPT with context 16
and byte vocabulary, nanoGPT parameter names, tied head, exact GELU and
PyTorch's fused causal attention. Contents: the weights ("param/<name>"), a
batch of 2 sequences of KJV bytes ("x" [2, 16], targets "y" [2, 16]), the
logits [2, 16, 256], the mean token cross-entropy ("loss") and every
parameter's gradient ("grad/<name>").

Run with the current PyTorch from PyPI (bench/torch_venv.sh makes the venv):
    /work/torch-venv/bin/python bench/golden_gpt.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_cnn import save_safetensors  # the same writer (F32 and I64 tensors)

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "golden_gpt.safetensors")
TEXT = (b"In the beginning God created the heaven and the earth. And the earth was "
        b"without form, and void; and darkness was upon the face of the deep.")
V, T, L, H, E = 256, 16, 2, 2, 32


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(E, 3 * E)
        self.c_proj = nn.Linear(E, E)

    def forward(self, x):
        B, T_, _ = x.shape
        q, k, v = self.c_attn(x).split(E, dim=2)
        q, k, v = (t.view(B, T_, H, E // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T_, E))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(E, 4 * E)
        self.c_proj = nn.Linear(4 * E, E)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(E), Attention(), nn.LayerNorm(E), MLP()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, E), nn.Embedding(T, E)
        self.h = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = nn.LayerNorm(E)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return F.linear(self.ln_f(x), self.wte.weight)


def main():
    torch.manual_seed(0)
    model = GPT()
    with torch.no_grad():  # weights large enough that every path matters; LN affine not identity
        for name, p in model.named_parameters():
            if "ln_" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.1)
    data = torch.tensor(list(TEXT[:2 * T + 1]), dtype=torch.int64)
    x = torch.stack([data[0:T], data[T:2 * T]])
    y = torch.stack([data[1:T + 1], data[T + 1:2 * T + 1]])
    out = {"x": x, "y": y}
    for name, p in model.named_parameters():
        out["param/" + name] = p.detach().clone()
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    loss.backward()
    out["logits"] = logits
    out["loss"] = loss.reshape(1)
    for name, p in model.named_parameters():
        out["grad/" + name] = p.grad
    save_safetensors(OUT, out)
    print(f"wrote {OUT}: loss {loss.item():.6f} (uniform: {math.log(V):.4f}), torch {torch.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
