"""Writes tests/data/grad_scaler_golden.json: torch.amp.GradScaler's scale,
growth tracker and step/skip decision on a scripted sequence of finite and
non-finite gradients, so tests/test_grad_scaler.cpp can check brisk's
GradScaler against PyTorch step by step.

  python bench/golden_grad_scaler.py [out.json]   (a venv with PyPI torch)

Needs a current PyTorch from PyPI (pip install torch numpy in a venv)."""
import json
import sys

import torch

# F: a finite gradient; I: inf in the gradient; N: NaN in the gradient.
SEQUENCE = "FFFFIFFFFFFFINFFFFFFFIIIFFFFFFFFFF"
OPTS = dict(init_scale=1024.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)


def main(out):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = torch.optim.SGD([w], lr=0.125)
    scaler = torch.amp.GradScaler("cpu", **OPTS)
    true_grad = torch.tensor([0.5, 0.25, -1.0])
    steps = []
    for kind in SEQUENCE:
        opt.zero_grad()
        # backward of scale * <w, g> gives scale * g: the scaled gradient
        (scaler.scale((w * true_grad).sum())).backward()
        if kind == "I":
            w.grad[1] = float("inf")
        elif kind == "N":
            w.grad[0] = float("nan")
        before = w.detach().clone()
        scaler.step(opt)
        scaler.update()
        stepped = not torch.equal(before, w.detach())
        steps.append({"grad": kind, "stepped": stepped, "scale": scaler.get_scale(),
                      "growth_tracker": int(scaler.state_dict()["_growth_tracker"]),
                      "w": w.detach().tolist()})
    doc = {"torch_version": torch.__version__, "options": OPTS, "w0": [1.0, -2.0, 0.5],
           "true_grad": true_grad.tolist(), "lr": 0.125, "steps": steps}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {out}: {len(steps)} steps, torch {torch.__version__}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/grad_scaler_golden.json")
