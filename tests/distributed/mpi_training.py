"""Data-parallel training end to end, on 2 MPI ranks (mpirun --oversubscribe):

- equivalence: 2 ranks x batch 32 end with the parameters of 1 rank x batch 64
  (same examples per step, augmentation included) to within 1e-5;
- determinism: the same 2-rank run twice gives the same bits;
- checkpoint on 2 ranks, resume on 2 ranks: the same bits as an uninterrupted
  run, with a batch-level selection method whose per-rank buffers are saved;
- resuming a 2-rank checkpoint on 1 rank is refused with a clear message;
- ranks started with different flags stop with a message naming the key;
- a rank killed mid-run ends the job (no hang) and the last checkpoint resumes;
- one short run per efficiency family: the trainer checks at every epoch that
  all ranks chose the same order and at every evaluation that they hold the
  same parameters and masks, so a run that finishes kept the invariant.

Also runs the collectives test program (tests/distributed/collectives.cpp) on
2 and 3 ranks when given.

Usage: mpi_training.py BRISK_BINARY [COLLECTIVES_BINARY]. Prints 'N passed, M failed'."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reliability"))
from common import make_dataset, read_safetensors  # noqa: E402

BRISK = os.path.abspath(sys.argv[1])
COLLECTIVES = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
MPIRUN = shutil.which("mpirun")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
           OMPI_MCA_rmaps_base_oversubscribe="1")
# Launcher flags: no core binding (tests run two at a time on two cores).
LAUNCH = ["--oversubscribe", "--bind-to", "none"]
TMP = tempfile.mkdtemp(prefix="brisk_mpi_")
DATA = make_dataset(os.path.join(TMP, "data"), n_train=512, n_test=128)
COMMON = ["--data-dir", DATA, "--threads", "1", "--progress", "off", "--seed", "5"]


def mpirun(np_, args, timeout=300):
    cmd = [MPIRUN, "-np", str(np_)] + LAUNCH + [BRISK, "train"] + COMMON + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return None, "timed out (a hang)"


def single(args, timeout=300):
    p = subprocess.run([BRISK, "train"] + COMMON + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def tensors(run, prefix="model/"):
    """name -> list of floats (f32 tensors under prefix) of the run's checkpoint."""
    import struct
    f = [n for n in os.listdir(run) if n.startswith("checkpoint-step")][0]
    header, data = read_safetensors(os.path.join(run, f))
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or not k.startswith(prefix):
            continue
        s, e = v["data_offsets"]
        if v["dtype"] == "F32":
            out[k] = struct.unpack("<%df" % ((e - s) // 4), data[s:e])
        else:
            out[k] = data[s:e]
    return out


def max_diff(run_a, run_b):
    """Largest |difference| between the two runs' model parameters."""
    a, b = tensors(run_a), tensors(run_b)
    assert a.keys() == b.keys() and a, (a.keys(), b.keys())
    return max(max(abs(x - y) for x, y in zip(a[k], b[k])) for k in a)


def two_ranks_vs_one(base, batch, name):
    """Runs `base` on 1 rank with batch 2 * batch (out NAME1) and on 2 ranks
    with `batch` each (out NAME2); returns the largest parameter difference."""
    rc, log = single(base + ["--batch-size", str(2 * batch), "--out", out(name + "1")])
    expect_ok(rc, log, f"{name}: 1 rank")
    rc, log = mpirun(2, base + ["--batch-size", str(batch), "--out", out(name + "2")])
    expect_ok(rc, log, f"{name}: 2 ranks")
    assert "data-parallel on 2 ranks" in log, log
    return max_diff(out(name + "1"), out(name + "2"))


def all_bytes(run):
    f = [n for n in os.listdir(run) if n.startswith("checkpoint-step")][0]
    return read_safetensors(os.path.join(run, f))


def out(name):
    return os.path.join(TMP, name)


def expect_ok(rc, log, what):
    assert rc == 0, f"{what}: exit {rc}\n{log[-3000:]}"


def test_equivalence():
    base = ["--model", "mlp", "--epochs", "2", "--eval-every", "8", "--augment", "crop+flip", "--lr", "0.05"]
    worst = two_ranks_vs_one(base, 32, "eq")
    b = tensors(out("eq2"))
    assert worst <= 1e-5, f"2 ranks x 32 differ from 1 rank x 64 by {worst}"
    # The runs trained (a trivially equal pair of untrained models would pass).
    rc, log = single(["--model", "mlp", "--epochs", "2", "--max-steps", "1", "--batch-size", "64",
                      "--out", out("eq0")])
    expect_ok(rc, log, "1 step")
    moved = max_diff(out("eq1"), out("eq0"))
    assert moved > 1e-3, f"the parameters barely moved ({moved}): the comparison would show nothing"
    print(f"  max |2 ranks - 1 rank| = {worst:.3g} (parameters moved {moved:.3g} from step 1)")
    import json
    m1 = [json.loads(l) for l in open(os.path.join(out("eq1"), "metrics.jsonl"))][-1]
    m2 = [json.loads(l) for l in open(os.path.join(out("eq2"), "metrics.jsonl"))][-1]
    assert m2["samples_seen"] == m1["samples_seen"] and m2["world_size"] == 2 and "world_size" not in m1, (m1, m2)
    params = sum(len(v) for v in b.values())
    assert abs(m2["comm_mb_per_step"] - params * 4 / 1e6) < 1e-9, (m2["comm_mb_per_step"], params)
    assert abs(m2["flops"] - m1["flops"]) <= 1e-9 * m1["flops"], (m1["flops"], m2["flops"])


def test_language_model():
    """gpt-tiny on the KJV: 2 ranks x 8 sequences = 1 rank x 16 (text batches shard too)."""
    base = ["--model", "gpt-tiny", "--data", "text:kjv", "--block-size", "32", "--epochs", "1", "--max-steps", "6",
            "--eval-every", "6", "--optimizer", "adamw", "--lr", "0.003"]
    if shutil.which("bible") is None:
        print("  bible-kjv not installed: SKIPPED")
        return
    worst = two_ranks_vs_one(base, 8, "lm")
    # AdamW divides by sqrt(v): a gradient near zero whose last bits differ
    # (the sum of two half-batch means vs one mean) moves its weight by up to
    # lr, so the bound is looser than SGD's 1e-5.
    assert worst <= 1e-4, f"gpt: 2 ranks x 8 differ from 1 rank x 16 by {worst}"
    print(f"  gpt-tiny: max |2 ranks - 1 rank| = {worst:.3g}")


def test_determinism():
    args = ["--model", "cnn", "--epochs", "1", "--batch-size", "32", "--eval-every", "4"]
    for name in ("det_a", "det_b"):
        rc, log = mpirun(2, args + ["--out", out(name)])
        expect_ok(rc, log, name)
    assert all_bytes(out("det_a")) == all_bytes(out("det_b")), "two identical 2-rank runs gave different bits"


def test_resume_bit_exact():
    # Selective backprop keeps a buffer of selected examples per rank; from
    # epoch 2 of 4 it is active, so checkpoints fall while buffers are non-empty.
    args = ["--model", "mlp", "--epochs", "4", "--batch-size", "32", "--eval-every", "3",
            "--method", "select:kind=selective-backprop,beta=2"]
    rc, log = mpirun(2, args + ["--out", out("res_full")])
    expect_ok(rc, log, "uninterrupted")
    rc, log = mpirun(2, args + ["--max-steps", "9", "--out", out("res_part")])
    expect_ok(rc, log, "first part")
    h, _ = all_bytes(out("res_part"))
    rc, log = mpirun(2, ["--resume", out("res_part"), "--max-steps", "0"])
    expect_ok(rc, log, "resumed")
    assert all_bytes(out("res_full")) == all_bytes(out("res_part")), "resumed 2-rank run differs from uninterrupted"
    print("  checkpoint at step 9 held", "a selection buffer" if "trainer/buffer_x" in h else "no buffer")


def test_resume_other_world_refused():
    rc, log = single(["--resume", out("res_full")])
    assert rc not in (0, None) and "same number of ranks" in log, (rc, log[-2000:])


def test_config_mismatch():
    cmd = [MPIRUN] + LAUNCH + ["-np", "1", BRISK, "train"] + COMMON + ["--model", "mlp", "--lr", "0.1",
           "--out", out("mis")] + [":", "-np", "1", BRISK, "train"] + COMMON + ["--model", "mlp", "--lr", "0.2",
           "--out", out("mis")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    log = p.stdout + p.stderr
    assert p.returncode != 0 and "different configurations" in log and '"lr"' not in log and "lr = 0.1" in log, (
        p.returncode, log[-2000:])
    assert not os.path.exists(os.path.join(out("mis"), "checkpoint.json"))


def test_other_commands_refused():
    cmd = [MPIRUN, "-np", "2"] + LAUNCH + [BRISK, "profile", "--steps", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    log = p.stdout + p.stderr
    assert p.returncode != 0 and "only `brisk train` runs data-parallel" in log, (p.returncode, log[-2000:])


def test_nccl():
    """--device cuda on 2 ranks (NCCL): matches 1 rank with a batch twice as large. Needs 2 GPUs."""
    info = subprocess.run([BRISK, "info"], capture_output=True, text=True).stdout
    devices = int(info.split("devices: ")[1].split()[0]) if "devices: " in info else 0
    if "nccl built" not in info or devices < 2:
        print(f"  SKIPPED: needs NCCL and 2 CUDA devices (this build: {'nccl built' in info}, devices: {devices})")
        return
    base = ["--model", "mlp", "--device", "cuda", "--epochs", "1", "--max-steps", "8", "--eval-every", "8"]
    worst = two_ranks_vs_one(base, 32, "nccl")
    assert worst <= 1e-5, f"NCCL: 2 ranks x 32 differ from 1 rank x 64 by {worst}"
    print(f"  NCCL: max |2 ranks - 1 rank| = {worst:.3g}")


def rank_pids(marker):
    """pid of each brisk rank whose command line holds `marker`, by rank."""
    pids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
            env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if not cmd or not cmd[0].endswith(b"brisk") or marker.encode() not in b" ".join(cmd):
            continue
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                pids[int(e.split(b"=")[1])] = int(d)
    return pids


def test_killed_rank():
    run = out("killed")
    cmd = [MPIRUN, "-np", "2"] + LAUNCH + [BRISK, "train"] + COMMON + [
        "--model", "mlp", "--epochs", "400", "--batch-size", "32", "--eval-every", "4", "--out", run]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(run, "checkpoint.json")) and time.time() < deadline:
        time.sleep(0.1)
    assert os.path.exists(os.path.join(run, "checkpoint.json")), "no checkpoint within 60 s"
    pids = rank_pids(run)
    assert 1 in pids, f"rank 1 not found: {pids}"
    os.kill(pids[1], signal.SIGKILL)
    try:
        log, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("the job hung after a rank was killed")
    assert p.returncode != 0, f"job exited 0 after a rank was killed:\n{log[-2000:]}"
    # The last checkpoint is complete: it resumes (on 2 ranks) and trains on.
    import json
    step = json.load(open(os.path.join(run, "checkpoint.json")))["step"]
    rc, log = mpirun(2, ["--resume", run, "--max-steps", str(step + 4)])
    expect_ok(rc, log, "resume after the killed rank")
    assert json.load(open(os.path.join(run, "checkpoint.json")))["step"] == step + 4


# (model, method spec): every family; small data, 2 ranks, 6 epochs of 8 steps.
FAMILIES = [
    ("mlp", "prune:target=0.5"),
    ("mlp", "prune:schedule=gradual,target=0.8,end=0.6,frequency=2"),
    ("mlp", "prune:schedule=imp,rounds=2,target=0.5"),
    ("mlp", "prune:schedule=rigl,target=0.8,frequency=2"),
    ("mlp", "prune:structure=2:4"),
    ("cnn", "prune:structure=channel,target=0.5,start=0.2"),
    ("mlp", "grow:kind=net2net"),
    ("cnn", "grow:kind=msg"),
    ("mlp", "select:kind=rs2,ratio=0.5"),
    ("mlp", "select:kind=infobatch"),
    ("mlp", "select:kind=el2n,keep=0.7,start=1"),
    ("mlp", "select:kind=forgetting,keep=0.7,start=2"),
    ("mlp", "select:kind=grand,keep=0.7,start=1"),
    ("mlp", "select:kind=selective-backprop,beta=2"),
    ("mlp", "select:kind=selective-backprop,variant=rank,keep=0.5"),
    ("mlp", "select:kind=rho-loss,il_epochs=1"),
    ("cnn", "precision:dtype=bf16"),
    ("mlp", "precision:dtype=fp16"),
    ("cnn", "freeze:kind=freezeout,t0=0.5"),
    ("mlp", "regularize:kind=mixup,alpha=0.2"),
    ("cnn", "regularize:kind=cutmix,alpha=1"),
    ("resnet", "stochastic-depth:p_last=0.5"),
    ("resnet", "resize:scale=0.5,delay=0.3,finetune=0.2,increment=2"),
    ("mlp", "factorize:rank=0.25,at=0"),
    ("mlp", "batch-warmup:start=0.25,until=0.5,lr=none"),
    ("mlp", "ema:decay=0.9"),
    ("mlp", "swa:start=0.5,lr=0.01,anneal=0.1"),
]


def test_families():
    failed = []
    for i, (model, spec) in enumerate(FAMILIES):
        run = out(f"fam{i}")
        rc, log = mpirun(2, ["--model", model, "--epochs", "6", "--batch-size", "32", "--eval-every", "8",
                             "--method", spec, "--out", run])
        ok = rc == 0 and "final: test_acc" in log
        print(f"  {'ok  ' if ok else 'FAIL'} {model:7s} {spec}")
        if not ok:
            failed.append(f"{spec}: exit {rc}\n{log[-1500:]}")
    assert not failed, "\n".join(failed)


def test_overlap_equals_blocking():
    """Gradients averaged during the backward pass (the default) give the same
    bits as one blocking average after it, on 2 ranks (the same sums, started
    earlier), also where the parameter set changes (growth, freezing), where
    some parameters get no gradient (stochastic depth) and where a method runs
    backward passes of its own between steps (GraNd)."""
    cases = [("mlp", "grow:kind=net2net"), ("cnn", "freeze:kind=freezeout,t0=0.5"),
             ("resnet", "stochastic-depth:p_last=0.5"), ("mlp", "select:kind=grand,keep=0.7,start=1")]
    for i, (model, spec) in enumerate(cases):
        runs = []
        for ov in ("true", "false"):
            run = out(f"ov{i}{ov}")
            rc, log = mpirun(2, ["--model", model, "--epochs", "3", "--batch-size", "32", "--eval-every", "8",
                                 "--method", spec, "--comm-overlap", ov, "--out", run])
            expect_ok(rc, log, f"{spec}, comm-overlap {ov}")
            runs.append(run)
        diff = max_diff(*runs)
        assert diff == 0, f"{spec}: overlapped and blocking averages differ by {diff}"
        print(f"  {model:7s} {spec}: overlapped = blocking, bit for bit")


def test_collectives():
    if COLLECTIVES is None:
        print("  collectives program not given: SKIPPED")
        return
    for n in (2, 3):
        p = subprocess.run([MPIRUN, "-np", str(n)] + LAUNCH + [COLLECTIVES, DATA], capture_output=True, text=True,
                           timeout=300, env=ENV)
        log = p.stdout + p.stderr
        assert p.returncode == 0 and " 0 failed" in log, f"{n} ranks: exit {p.returncode}\n{log[-3000:]}"
        print("  " + [l for l in log.splitlines() if "passed" in l][0])


TESTS = [test_collectives, test_overlap_equals_blocking, test_equivalence, test_language_model, test_determinism, test_resume_bit_exact, test_resume_other_world_refused,
         test_config_mismatch, test_other_commands_refused, test_killed_rank, test_families, test_nccl]

if __name__ == "__main__":
    if MPIRUN is None:
        print("mpirun not found (apt-get install openmpi-bin): SKIPPED")
        print("0 passed, 0 failed, 1 skipped")
        sys.exit(0)
    passed = failed = 0
    for t in TESTS:
        t0 = time.time()
        try:
            t()
            passed += 1
            print(f"PASS {t.__name__} ({time.time() - t0:.1f}s)", flush=True)
        except Exception as e:  # report every case, then fail
            failed += 1
            print(f"FAIL {t.__name__}: {e}", flush=True)
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
