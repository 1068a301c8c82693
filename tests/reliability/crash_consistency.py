#!/usr/bin/env python3
"""Crash consistency: a training process is killed with SIGKILL at random
points (mid-step, mid-evaluation, mid-checkpoint write), then resumed, many
times. The final checkpoint must be bit-identical to an uninterrupted run's,
and metrics.jsonl must hold each evaluation exactly once with the same values
(wall-clock time aside).

usage: crash_consistency.py BRISK_BINARY [KILLS_PER_RUN] [SEED]"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import make_dataset, read_safetensors  # noqa: E402

argv = sys.argv
BIN = os.path.abspath(argv[1])
KILLS = int(argv[2]) if len(argv) > 2 else 30
rng = random.Random(int(argv[3]) if len(argv) > 3 else 1)
TMP = tempfile.mkdtemp(prefix="brisk_crash_")
DATA = make_dataset(os.path.join(TMP, "data"), n_train=512, n_test=64)
BASE = ["--model", "mlp", "--data-dir", DATA, "--batch-size", "32", "--eval-every", "2", "--threads", "1",
        "--progress", "off"]
# Time-dependent fields differ between any two runs.
TIMING = {"wall_s", "score_s"}

CONFIGS = {
    "sgd": ["--epochs", "24"],
    "adamw+prune": ["--epochs", "8", "--optimizer", "adamw", "--lr", "0.002",
                    "--method", "prune:target=0.5,schedule=gradual,frequency=8"],
    # Batch-level selection loads batches without stepping: a resumed epoch
    # can end, and be checkpointed, before its first step.
    "adamw+prune+selective-backprop": ["--epochs", "8", "--optimizer", "adamw", "--lr", "0.002",
                                       "--method", "prune:target=0.5,schedule=gradual,frequency=8",
                                       "--method", "select:kind=selective-backprop"],
}


def final_state(out):
    j = json.load(open(os.path.join(out, "checkpoint.json")))
    header, data = read_safetensors(os.path.join(out, j["tensors_file"]))
    header.pop("__metadata__", None)
    tensors = {k: data[v["data_offsets"][0]: v["data_offsets"][1]] for k, v in header.items()}
    return j, tensors


def metrics(out):
    lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    return [{k: v for k, v in l.items() if k not in TIMING} for l in lines]


def killed_run(out, extra):
    """Starts, kills at a random moment, resumes, ... KILLS times; then lets
    the last run finish. Returns (kills that hit a live process, resumes)."""
    hits = resumes = 0
    for _ in range(KILLS):
        resume = os.path.exists(os.path.join(out, "checkpoint.json"))
        args = ["train", "--resume", out] if resume else ["train"] + BASE + extra + ["--out", out]
        resumes += resume
        p = subprocess.Popen([BIN] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Until a first checkpoint exists, kills may land anywhere up to well
        # past its usual time (startup alone takes ~0.1 s, more in a CUDA
        # build): a window shorter than the time to the first checkpoint
        # would restart from scratch forever and never test a resume.
        time.sleep(rng.uniform(0.02, 0.15 if resume else 0.6))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            hits += 1
        p.wait()
        err = p.stderr.read().decode()
        if p.returncode not in (0, -signal.SIGKILL):
            raise SystemExit("run exited %s after a kill: %s" % (p.returncode, err))
        if p.returncode == 0:
            return hits, resumes
    final = ["train", "--resume", out] if os.path.exists(os.path.join(out, "checkpoint.json")) else \
        ["train"] + BASE + extra + ["--out", out]
    r = subprocess.run([BIN] + final, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("final resume failed: " + r.stderr)
    return hits, resumes + 1


passed = failed = 0
for name, extra in CONFIGS.items():
    ref, out = os.path.join(TMP, name + "_ref"), os.path.join(TMP, name + "_killed")
    r = subprocess.run([BIN, "train"] + BASE + extra + ["--out", ref], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("reference run failed: " + r.stderr)
    hits, resumes = killed_run(out, extra)
    (jr, tr), (jk, tk) = final_state(ref), final_state(out)
    problems = []
    if jr["step"] != jk["step"]:
        problems.append("final step %s vs %s" % (jk["step"], jr["step"]))
    if set(tr) != set(tk):
        problems.append("tensor names differ: %s" % sorted(set(tr) ^ set(tk)))
    diff = [k for k in tr if k in tk and tr[k] != tk[k]]
    if diff:
        problems.append("%d tensors not bit-identical, e.g. %s" % (len(diff), diff[:3]))
    mr, mk = metrics(ref), metrics(out)
    # An epoch that ends at the step of a mid-epoch evaluation is evaluated
    # again (a new epoch value): (epoch, step) names one evaluation.
    points = [(m["epoch"], m["step"]) for m in mk]
    if len(points) != len(set(points)):
        problems.append("metrics.jsonl repeats evaluations: %s" % points)
    if mr != mk:
        problems.append("metrics differ from the uninterrupted run (%d vs %d lines)" % (len(mk), len(mr)))
    leftovers = [f for f in os.listdir(out) if f.endswith(".tmp") or
                 (f.startswith("checkpoint-step") and f != jk["tensors_file"])]
    print("%-34s %d kills hit a live process, %d resumes, %d evaluations, %s" %
          (name, hits, resumes, len(mk), "PASS" if not problems else "FAIL: " + "; ".join(problems)))
    if leftovers:
        print("  note: files left by killed writes (removed by the next checkpoint): %s" % leftovers)
    if hits < KILLS // 3:
        problems.append("too few kills hit a running process (%d)" % hits)
        print("  FAIL: too few kills hit a running process")
    passed += not problems
    failed += bool(problems)

print("\ncrash_consistency: %d passed, %d failed" % (passed, failed))
shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if failed else 0)
