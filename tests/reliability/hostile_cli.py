#!/usr/bin/env python3
"""Hostile command lines and files against `brisk train`/`demo`/`profile`: every case
must end with a clear message naming what was wrong and an exit code in
1..127 (no signal, no "terminate called", no hang), or, for the cases that
are valid, succeed. Tampered checkpoints are made from a real run.

usage: hostile_cli.py BRISK_BINARY"""
import json
import os
import re
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import make_dataset, read_safetensors, run, write_idx, write_safetensors_raw  # noqa: E402

BIN = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="brisk_hostile_")
FAST = ["--threads", "1", "--progress", "off"]
results = []


def check(name, args, expect, ok=False, timeout=120):
    """expect: a regex the combined output must match. ok: exit 0 wanted."""
    rc, out, err = run(BIN, args, timeout=timeout)
    text = out + err
    problems = []
    if rc is None:
        problems.append("hung (no exit within %d s)" % timeout)
    elif ok and rc != 0:
        problems.append("exit %d, expected 0" % rc)
    elif not ok and not (1 <= rc <= 127):
        problems.append("exit %d, expected an error exit in 1..127" % rc)
    if "terminate called" in text or "Segmentation" in text or "Aborted" in text:
        problems.append("crashed")
    if rc is not None and not re.search(expect, text, re.S):
        problems.append("output lacks /%s/" % expect)
    results.append((name, problems))
    status = "PASS" if not problems else "FAIL: " + "; ".join(problems) + "\n    " + text.strip()[-600:]
    print("%-44s %s" % (name, status), flush=True)


def path(*p):
    return os.path.join(TMP, *p)


# ---------------------------------------------------------------- data
good = make_dataset(path("data"))
make_dataset(path("data32"), hw=(32, 32))
make_dataset(path("data_mixed"), hw=(28, 28), test_hw=(27, 28))
make_dataset(path("data_labels"), max_label=200)
os.makedirs(path("data_huge"))
with open(path("data_huge", "train-images-idx3-ubyte"), "wb") as f:  # 16 bytes, 4 huge dims
    f.write(bytes([0, 0, 8, 4]) + b"\x0f\xff\xff\xff" * 4)
shutil.copy(path("data", "train-labels-idx1-ubyte"), path("data_huge"))
os.makedirs(path("data_trunc"))
for n in os.listdir(good):
    shutil.copy(os.path.join(good, n), path("data_trunc"))
with open(path("data_trunc", "train-images-idx3-ubyte"), "r+b") as f:
    f.truncate(1000)
os.makedirs(path("data_notidx"))
for n in os.listdir(good):
    with open(path("data_notidx", n), "wb") as f:
        f.write(b"PK\x03\x04 this is a zip file, not IDX")
with open(path("plainfile"), "w") as f:
    f.write("x")

D = ["--data-dir", good]
T = ["train", "--model", "mlp", "--batch-size", "32"] + D + FAST
T_FREE = ["train", "--model", "mlp", "--progress", "off"] + D  # for cases that set --threads or --batch-size

# ---------------------------------------------------------------- flags and numbers
check("unknown flag", ["train", "--bogus"], "--bogus")
check("unknown command", ["trian", "--model", "mlp"], r"unknown command 'trian' \(known: demo, info, train")
check("epochs near 2^63", T + ["--epochs", "9223372036854775807"], r"epochs must be in \[1, 1000000\]")
check("epochs beyond int64", T + ["--epochs", "99999999999999999999"], "'epochs' must be an integer")
check("epochs negative", T + ["--epochs", "-3"], "epochs must be in .* got -3")
check("threads above 2^32", T_FREE + ["--threads", "4294967297"], r"threads must be in \[0, \d+\].*got 4294967297")
check("threads 10000", T_FREE + ["--threads", "10000"], r"threads must be in \[0, \d+\]")
check("batch-size 0", T_FREE + ["--batch-size", "0"], "batch-size must be in")
check("batch-size beyond data", T_FREE + ["--batch-size", "100000"], "exceeds the 256 training examples")
check("lr nan", T + ["--lr", "nan"], "'lr' must be a number")
check("lr negative", T + ["--lr", "-1"], "lr must be > 0")
check("seed negative", T + ["--seed", "-1"], "'seed' must be >= 0, got -1")
check("momentum 1", T + ["--momentum", "1"], r"momentum must be in \[0, 1\)")
check("bucket-mb 0", T + ["--bucket-mb", "0"], r"bucket-mb must be in \[0.001, 4096\]")
check("bucket-mb nan", T + ["--bucket-mb", "nan"], "'bucket-mb' must be a number")
check("comm-overlap maybe", T + ["--comm-overlap", "maybe"], "'comm-overlap' must be true or false")
check("steps negative", T + ["--steps", "-5"], r"steps must be in \[0, 1e12\]")
check("steps not a number", T + ["--steps", "1e3x"], "'steps' must be an integer")
check("steps mid-epoch", T + ["--steps", "5", "--out", path("steps5")], "step 5 ", ok=True)
with open(path("sp_base.toml"), "w") as f:
    f.write('model = "mlp"\ndata-dir = "%s"\n' % good)
SP = ["speedup", "--baseline", path("sp_base.toml"), "--out", path("sp"), "--no-plot"]
check("speedup unknown budget unit", SP + ["--budget-unit", "hours"], "--budget-unit must be epochs or steps")
check("speedup target loss negative", SP + ["--target-loss", "-1"], "--target-loss must be finite and > 0")
check("speedup target loss not a number", SP + ["--target-loss", "low"], "--target-loss: 'low' is not a number")
check("speedup target acc and loss", SP + ["--target-loss", "1.5", "--target-acc", "0.9"], "excludes")
check("speedup budget 0 steps", SP + ["--budget-unit", "steps", "--budgets", "0"], "budgets are steps >= 1")
check("speedup candidate budgets empty", SP + ["--candidate-budgets", ""], "--candidate-budgets is empty")
check("speedup candidate budgets not numbers", SP + ["--candidate-budgets", "1e3x"],
      "--candidate-budgets: '1e3x' is not an integer")
check("speedup candidate budgets one too many", SP + ["--budgets", "1", "--candidate-budgets", "1,2"],
      "--candidate-budgets needs one budget per --budgets entry")
check("demo threads 100000", ["demo", "--threads", "100000", "--data-dir", good], r"set_num_threads: need 1 <= n <= \d+")
check("out is a regular file", T + ["--epochs", "1", "--out", path("plainfile")], "exists and is not a folder")
check("config missing", ["train", "--config", path("nope.toml")], "nope.toml")
with open(path("bad_type.toml"), "w") as f:
    f.write('epochs = "ten"\n')
check("config wrong type", ["train", "--config", path("bad_type.toml")], "'epochs' must be an integer, got 'ten'")
with open(path("bad_syntax.toml"), "w") as f:
    f.write("epochs = = 3\n")
check("config bad syntax", ["train", "--config", path("bad_syntax.toml")], "bad_syntax.toml: .*line 1")

# ---------------------------------------------------------------- method specs
check("N:M with trailing junk", T + ["--method", "prune:structure=2:4x"], "unknown structure '2:4x'")
check("N:M fits no layer", T + ["--epochs", "1", "--method", "prune:structure=5:11", "--out", path("nm")],
      "fits no layer")
check("grow points empty", T + ["--method", "grow:points="], "points is empty")
check("method unknown family", T + ["--method", "distill:x=1"], "unknown method family 'distill'")
check("method key twice", T + ["--method", "prune:target=0.5,target=0.6"], "given twice")
check("method trailing comma", T + ["--method", "prune:target=0.5,"], "expected key=value")
check("resnet-deep is a model", ["train", "--model", "resnet-deep", "--epochs", "1", "--max-steps", "1",
                                 "--batch-size", "8", "--out", path("rdeep")] + D + FAST,
      "final: test_acc", ok=True)

# ---------------------------------------------------------------- data
check("images 32x32", ["train", "--model", "cnn", "--data-dir", path("data32"), "--out", path("d32")] + FAST,
      r"training images are \[1, 32, 32\].*reads \[1, 28, 28\]")
check("train/test sizes differ", ["train", "--data-dir", path("data_mixed"), "--out", path("dmix")] + FAST,
      r"test images are \[1, 27, 28\]")
check("labels out of range", ["train", "--data-dir", path("data_labels"), "--out", path("dlab")] + FAST,
      r"labels must be in \[0, 10\)")
check("IDX dims overflow", ["train", "--data-dir", path("data_huge"), "--out", path("dhuge")] + FAST,
      "overflows")
check("IDX truncated", ["train", "--data-dir", path("data_trunc"), "--out", path("dtrunc")] + FAST, "truncated")
check("IDX not IDX", ["train", "--data-dir", path("data_notidx"), "--out", path("dnot")] + FAST,
      "bad magic number")
check("data dir missing", ["train", "--data-dir", path("nope"), "--out", path("dnope")] + FAST,
      "dataset-fashion-mnist")

# ---------------------------------------------------------------- checkpoints
base = path("base")
check("base run (3 steps)", T + ["--epochs", "2", "--max-steps", "3", "--out", base], "final: test_acc", ok=True)


def tamper(name, edit, expect):
    """Copies the base run, applies edit(folder, checkpoint_json, tensors_path),
    then resumes it."""
    d = path("ck_" + re.sub(r"\W+", "_", name))
    shutil.copytree(base, d)
    jp = os.path.join(d, "checkpoint.json")
    j = json.load(open(jp))
    tp = os.path.join(d, j["tensors_file"])
    text = edit(d, j, tp)  # an edit may return the file's whole new text
    with open(jp, "w") as f:
        f.write(text if isinstance(text, str) else json.dumps(j, indent=1))
    check("checkpoint: " + name, ["train", "--resume", d] + FAST, expect)


def rewrite(j, tp, header, data, header_text=None):
    """Writes a tensors file and keeps checkpoint.json's size and manifest in step."""
    text = header_text if header_text is not None else json.dumps(header)
    write_safetensors_raw(tp, text, data)
    j["tensors_bytes"] = os.path.getsize(tp)
    j["tensors"] = sorted(k for k in header if k != "__metadata__")


def compact(header, data, drop=(), add=None):
    """A new (header, data) without `drop`, with `add` {name: (dtype, shape, bytes)}."""
    out_h, out_d = {}, b""
    for k, v in header.items():
        if k == "__metadata__" or k in drop:
            continue
        b = data[v["data_offsets"][0] : v["data_offsets"][1]]
        out_h[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [len(out_d), len(out_d) + len(b)]}
        out_d += b
    for k, (dt, shape, b) in (add or {}).items():
        out_h[k] = {"dtype": dt, "shape": shape, "data_offsets": [len(out_d), len(out_d) + len(b)]}
        out_d += b
    return out_h, out_d


def edit_tensors(fn):
    def edit(d, j, tp):
        h, data = read_safetensors(tp)
        fn(j, tp, h, data)
    return edit


MOM = "optim/1.weight/momentum_buffer"
check("checkpoint: untouched copy resumes", ["train", "--resume", base, "--epochs", "1"] + FAST,
      "final: test_acc", ok=True)
tamper("overlapping offsets", edit_tensors(lambda j, tp, h, d: (
    h[MOM].__setitem__("data_offsets", h["model/1.weight"]["data_offsets"]), rewrite(j, tp, h, d))), "overlaps")
tamper("duplicate key", edit_tensors(lambda j, tp, h, d: rewrite(
    j, tp, h, d, json.dumps(h)[:-1] + ', "model/1.bias": ' + json.dumps(h["model/1.bias"]) + "}")),
    "'model/1.bias' appears twice")
tamper("fractional shape", edit_tensors(lambda j, tp, h, d: (
    h["model/1.bias"].__setitem__("shape", [h["model/1.bias"]["shape"][0] + 0.5]), rewrite(j, tp, h, d))),
    "non-negative integers")
tamper("element count wraps", edit_tensors(lambda j, tp, h, d: rewrite(j, tp, *compact(
    h, d, add={"model/huge": ("F32", [2 ** 32, 2 ** 32, 16], b"")}))), "overflows")
tamper("missing optimizer tensor (file only)", edit_tensors(lambda j, tp, h, d: (
    lambda m: (rewrite(j, tp, *compact(h, d, drop=[MOM])), j.__setitem__("tensors", m)))(list(j["tensors"]))),
    "'optim/1.weight/momentum_buffer' is missing")
tamper("extra unknown tensor", edit_tensors(lambda j, tp, h, d: rewrite(j, tp, *compact(
    h, d, add={"foo/bar": ("F32", [1], b"\0\0\0\0")}))), "unknown tensor 'foo/bar'")
tamper("strange method key", edit_tensors(lambda j, tp, h, d: rewrite(j, tp, *compact(
    h, d, add={"method/x1/m": ("F32", [1], b"\0\0\0\0")}))), "not method/<index>/<name>")
tamper("epoch order of one index", edit_tensors(lambda j, tp, h, d: rewrite(j, tp, *compact(
    h, d, add={"trainer/epoch_order": ("I64", [256], struct.pack("<q", 5) * 256)}))), "visits example 5 twice")
tamper("epoch order out of range", edit_tensors(lambda j, tp, h, d: rewrite(j, tp, *compact(
    h, d, add={"trainer/epoch_order": ("I64", [1], struct.pack("<q", 10 ** 9))}))), "index 1000000000")
tamper("model tensor wrong shape", edit_tensors(lambda j, tp, h, d: rewrite(j, tp, *compact(
    h, d, drop=["model/1.bias"], add={"model/1.bias": ("F32", [3], b"\0" * 12)}))), "'1.bias' has shape \\[3\\]")
tamper("truncated tensors file", edit_tensors(lambda j, tp, h, d: (
    open(tp, "r+b").truncate(os.path.getsize(tp) - 100), j.__setitem__("tensors_bytes", os.path.getsize(tp)))),
    "outside the file")
tamper("header length huge", edit_tensors(lambda j, tp, h, d: (
    open(tp, "r+b").write(struct.pack("<Q", 2 ** 63)))), "header length")
tamper("tensors file replaced", lambda d, j, tp: j.__setitem__("tensors_bytes", 12), "truncated or replaced")
tamper("tensors_file escapes folder", lambda d, j, tp: j.__setitem__("tensors_file", "../base/x"),
       "must be a file name in the run folder")
tamper("step fractional", lambda d, j, tp: j.__setitem__("step", 2.5), "'step' must be a non-negative integer")
tamper("step negative", lambda d, j, tp: j.__setitem__("step", -4), "'step' must be a non-negative integer")
tamper("wall_s null (NaN)", lambda d, j, tp: j.__setitem__("wall_s", None), "'wall_s' must be a number")
tamper("batch_in_epoch past epoch", lambda d, j, tp: j.__setitem__("batch_in_epoch", 99), "past the epoch's 8")
tamper("methods not a list", lambda d, j, tp: j.__setitem__("methods", 3), "methods but this run has 0")
tamper("old format", lambda d, j, tp: j.__setitem__("format", "brisk-checkpoint-1"), "another brisk version")
tamper("checkpoint.json torn", lambda d, j, tp: "{", "checkpoint.json is corrupt")


def garbage_json(d, j, tp):
    j["format"] = ["x"]


tamper("format of wrong type", garbage_json, "has format '\\?'")


def bad_config(value):
    def edit(d, j, tp):
        j["config"].update(value)
    return edit


tamper("run config: epochs a string", bad_config({"epochs": "ten"}), "checkpoint.json: .*'epochs' must be an integer")
tamper("run config: method a number", bad_config({"method": 5}), "config has a value of the wrong type")
tamper("run config: lr an object", bad_config({"lr": {"a": 1}}), "checkpoint.json: .*unsupported value")
tamper("run config: missing", lambda d, j, tp: j.pop("config"), "no 'config' field")

# ---------------------------------------------------------------- divergence
div = path("div")
check("divergence: good first epoch", T + ["--epochs", "1", "--out", div], "final: test_acc", ok=True)
check("divergence: --lr 1e6 stops cleanly", ["train", "--resume", div, "--epochs", "3", "--lr", "1e6"] + FAST,
      r"loss is (nan|inf)\b.*last good checkpoint .*\(step 8\)")
ck = json.load(open(os.path.join(div, "checkpoint.json")))
results.append(("divergence: checkpoint still step 8", [] if ck["step"] == 8 else ["step %s" % ck["step"]]))
check("divergence: last good checkpoint resumes", ["train", "--resume", div, "--epochs", "2"] + FAST,
      "final: test_acc", ok=True)

# ---------------------------------------------------------------- profile
P = ["profile", "--set", "model=mlp", "--set", "data-dir=" + good, "--set", "threads=1"]
check("profile: --steps 0", P + ["--steps", "0"], r"--steps must be >= 1, got 0")
check("profile: --steps past int64 with the warm-up", P + ["--steps", "9223372036854775807"],
      r"--steps 9223372036854775807 plus the warm-up's 5 is past the largest step count")
# A bad --json path is refused before the run: no profile table is printed first.
check("profile: --json into a missing folder", P + ["--steps", "2", "--json", path("nope", "p.json")],
      r"^(?!.*brisk profile:).*cannot write --json .*nope.* is not a writable folder")
check("profile: --json names a folder", P + ["--steps", "2", "--json", TMP], r"^(?!.*brisk profile:).*it is a folder or not writable")
check("profile: --json to a file", P + ["--steps", "2", "--json", path("p.json")], r"brisk profile: mlp, 2 steps", ok=True)
results.append(("profile: its JSON file parses", [] if json.load(open(path("p.json")))["steps"] == 2 else ["steps"]))

results = [r for r in results if r is not None]
failed = [n for n, p in results if p]
print("\nhostile_cli: %d passed, %d failed" % (len(results) - len(failed), len(failed)))
shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if failed else 0)
