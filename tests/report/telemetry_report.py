"""Method telemetry and `brisk report`, end to end on small generated data.

Telemetry, each checked against an answer computed here, not by brisk:
- pruning (RigL): the last record's per-layer sparsity and mask picture equal
  those recomputed from the masks in the final checkpoint; every update after
  the first regrows as many weights as it drops; gradual magnitude pruning's
  sparsity never decreases and ends at the target;
- selection: InfoBatch's kept count per epoch equals the growth of
  metrics.jsonl's examples_backpropagated; the score histogram counts every
  example seen; EL2N with keep=0.5 keeps exactly half the data after scoring;
- growth (Net2Net on the mlp): the initial cut starts from the full model's
  parameter count (an unmodified run's checkpoint), the final count is the
  checkpoint's, and the loss is the same just before and after the surgery;
- precision (fp8 with a learning rate too small to move a weight): the
  fraction of weights that round to zero in e4m3 equals the fraction counted
  in the checkpoint's weights;
- the training-loss trace averages to metrics.jsonl's train_loss, carries
  each method's own state (batch warmup's batch size ramps to --batch-size,
  layer freezing's frozen count only rises), and the phase times add up to no
  more than the training seconds;
- a run interrupted and resumed writes the same records as one that was not
  (wall-clock fields aside); telemetry = false writes no file.

The report: one page per set of runs and a speedup folder, no external
references, and in a real headless browser (chromium) every chart and picture
is drawn and the page reports no script error. Bad input: a missing path, a
file, a folder that is no run, a corrupt line mid-file (errors naming it);
a torn last line, a run in progress, a run without telemetry (warnings and a
partial report); hostile strings in a config; a missing Chart.js.

Usage: telemetry_report.py BRISK_BINARY [SCREENSHOT.png]. Prints 'N passed, M failed'."""
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reliability"))
from common import make_dataset, read_safetensors, run  # noqa: E402

BRISK = os.path.abspath(sys.argv[1])
SHOT = sys.argv[2] if len(sys.argv) > 2 else None
TMP = tempfile.mkdtemp(prefix="brisk_report_")
DATA = make_dataset(os.path.join(TMP, "data"), n_train=2048, n_test=256)
COMMON = ["--data-dir", DATA, "--threads", "1", "--progress", "off", "--seed", "3", "--model", "mlp",
          "--batch-size", "64"]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))


def out(name):
    return os.path.join(TMP, name)


def train(name, extra):
    rc, so, se = run(BRISK, ["train"] + COMMON + extra + ["--out", out(name)], timeout=300)
    if rc != 0:
        print(se)
    return rc


def records(name, kind=None):
    path = os.path.join(out(name), "telemetry.jsonl")
    rs = [json.loads(line) for line in open(path)]
    return [r for r in rs if kind is None or r["kind"] == kind]


def metrics(name):
    return [json.loads(line) for line in open(os.path.join(out(name), "metrics.jsonl"))]


def checkpoint_tensors(name):
    path = sorted(glob.glob(os.path.join(out(name), "checkpoint-step*.safetensors")))[-1]
    header, raw = read_safetensors(path)
    ts = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        ts[k] = (v["shape"], struct.unpack("<%df" % ((b - a) // 4), raw[a:b]))
    return ts


def picture(shape, values, side=32):
    """mask_picture recomputed: [rows, cols] block averages as hex digits."""
    R = shape[0]
    C = len(values) // R
    r, c = min(R, side), min(C, side)
    kept = [0.0] * (r * c)
    count = [0.0] * (r * c)
    for y in range(R):
        i = y * r // R
        row = values[y * C:(y + 1) * C]
        for x in range(C):
            j = i * c + x * c // C
            kept[j] += row[x] != 0.0
            count[j] += 1
    return "".join("0123456789abcdef"[int(15.0 * k / max(n, 1.0) + 0.5)] for k, n in zip(kept, count))


# ---------------------------------------------------------------- telemetry
rc = train("rigl", ["--epochs", "2", "--method", "prune:schedule=rigl,target=0.8,frequency=10,end=0.75"])
check("rigl run", rc == 0)
if rc == 0:
    pr = records("rigl", "prune")
    ts = checkpoint_tensors("rigl")
    lastrec = pr[-1]
    ok, detail = True, ""
    for layer in lastrec["layers"]:
        shape, m = ts["method/0/" + layer["name"]]
        sp = sum(1 for v in m if v == 0.0) / len(m)
        if abs(sp - layer["sparsity"]) > 1e-12 or picture(shape, m) != layer["mask"]["cells"]:
            ok, detail = False, "%s: sparsity %r vs %r, or picture differs" % (layer["name"], layer["sparsity"], sp)
    check("rigl: last record's sparsity and mask picture match the checkpoint's masks", ok, detail)
    later = [lay for rec in pr[1:] for lay in rec["layers"]]
    check("rigl: updates after the first regrow as many weights as they drop",
          len(pr) > 2 and all(lay["dropped"] == lay["grown"] for lay in later) and any(lay["grown"] > 0 for lay in later),
          json.dumps([(lay["dropped"], lay["grown"]) for lay in later])[:300])
    total = sum(len(ts["method/0/" + lay["name"]][1]) for lay in lastrec["layers"])
    zeros = sum(sum(1 for v in ts["method/0/" + lay["name"]][1] if v == 0.0) for lay in lastrec["layers"])
    check("rigl: overall sparsity is over every masked weight", abs(lastrec["sparsity"] - zeros / total) < 1e-12,
          "%r vs %r" % (lastrec["sparsity"], zeros / total))

rc = train("gradual", ["--epochs", "1", "--method", "prune:schedule=gradual,target=0.7,frequency=4,start=0.1,end=0.6"])
if rc == 0:
    sp = [r["sparsity"] for r in records("gradual", "prune")]
    check("gradual: sparsity never decreases and ends at the target",
          len(sp) > 3 and all(b >= a for a, b in zip(sp, sp[1:])) and abs(sp[-1] - 0.7) < 0.01, str(sp))
else:
    check("gradual run", False)

rc = train("infobatch", ["--epochs", "3", "--method", "select:kind=infobatch,ratio=0.5"])
if rc == 0:
    sel = records("infobatch", "select")
    bp = [m["examples_backpropagated"] for m in metrics("infobatch")]
    kept = [r["kept"] for r in sel]
    check("infobatch: kept per epoch = growth of examples_backpropagated",
          kept == [bp[0]] + [b - a for a, b in zip(bp, bp[1:])], "%s vs %s" % (kept, bp))
    check("infobatch: epoch 1 keeps every example, later epochs fewer",
          kept[0] == 2048 and all(k < 2048 for k in kept[1:]), str(kept))
    check("infobatch: the histogram counts every example seen", sum(sel[0]["histogram"]["counts"]) == 2048,
          str(sum(sel[0]["histogram"]["counts"])))
    most, least = sel[-1]["most_kept"], sel[-1]["least_kept"]
    check("infobatch: most-kept examples were kept every epoch, at least as often as the least-kept",
          len(most) == 16 and all(e["times_kept"] == 3 for e in most) and
          min(e["times_kept"] for e in most) >= max(e["times_kept"] for e in least), json.dumps(most[:2] + least[:2]))
else:
    check("infobatch run", False)

rc = train("el2n", ["--epochs", "2", "--method", "select:kind=el2n,keep=0.5,start=1"])
if rc == 0:
    sel = records("el2n", "select")
    check("el2n keep=0.5: all 2048 in the scoring epoch, then exactly 1024",
          [r["kept"] for r in sel] == [2048, 1024] and sel[1]["score"] == "el2n" and
          sum(sel[1]["histogram"]["counts"]) == 2048, json.dumps([(r["kept"], r["score"]) for r in sel]))
else:
    check("el2n run", False)

rc_full = train("mlp_full", ["--epochs", "1", "--max-steps", "2"])
rc = train("grow", ["--epochs", "1", "--method", "grow:kind=net2net,points=0.5"])
if rc == 0 and rc_full == 0:
    gr = records("grow", "grow")
    full = sum(len(v[1]) for k, v in checkpoint_tensors("mlp_full").items() if k.startswith("model/"))
    final = sum(len(v[1]) for k, v in checkpoint_tensors("grow").items() if k.startswith("model/"))
    check("grow: the cut starts from the full model, the growth ends at the checkpoint's size",
          len(gr) == 2 and gr[0]["params_before"] == full and gr[1]["params_after"] == final and
          gr[1]["params_before"] == gr[0]["params_after"] and gr[0]["params_after"] < full,
          json.dumps([(g["params_before"], g["params_after"]) for g in gr]) + " full %d final %d" % (full, final))
    g1 = gr[1]
    check("grow: net2net keeps the loss through the surgery (mlp, no noise)",
          abs(g1["loss_before"] - g1["loss_after"]) < 1e-4 * max(1.0, abs(g1["loss_before"])),
          "%r vs %r" % (g1["loss_before"], g1["loss_after"]))
    check("grow: the changed tensors are named with their shapes",
          any(c["name"].endswith("weight") and c["before"] != c["after"] for c in g1["changed"]), str(g1["changed"])[:200])
else:
    check("grow runs", False)

# A learning rate of 1e-30 leaves every weight matrix bit-identical, so the
# checkpoint's weights are the ones each record looked at.
rc = train("fp8", ["--epochs", "1", "--max-steps", "10", "--lr", "1e-30", "--weight-decay", "0",
                   "--telemetry-every", "5", "--method", "precision:dtype=fp8"])
if rc == 0:
    pr = records("fp8", "precision")
    ts = checkpoint_tensors("fp8")
    tiny = 2.0 ** -10
    ok, detail = len(pr) == 2, "records %d" % len(pr)
    for layer in pr[-1]["layers"]:
        shape, w = ts["model/" + layer["name"]]
        if len(shape) < 2:
            continue
        frac = sum(1 for v in w if v != 0.0 and abs(v) < tiny) / len(w)
        if abs(frac - layer["weight_underflow"]) > 1e-12 or frac == 0.0:
            ok, detail = False, "%s: %r vs %r" % (layer["name"], layer["weight_underflow"], frac)
    check("fp8: weights below e4m3's smallest subnormal counted as in the checkpoint", ok, detail)
else:
    check("fp8 run", False)

rc = train("fp16", ["--epochs", "1", "--method", "precision:dtype=fp16"])
if rc == 0:
    pr = records("fp16", "precision")
    scales = [r["loss_scale"] for r in pr]
    check("fp16: loss scale recorded (a power of two), skipped steps never decrease",
          all(s >= 1 and float(s).hex().startswith("0x1.0000000000000p") for s in scales) and
          all(b["skipped_steps"] >= a["skipped_steps"] for a, b in zip(pr, pr[1:])), str(scales))
else:
    check("fp16 run", False)

# 2048 / 64 = 32 steps per epoch; a record every 8 steps: 4 per epoch.
rc = train("trace", ["--epochs", "2", "--telemetry-every", "8"])
if rc == 0:
    tr = records("trace", "train")
    ms = metrics("trace")
    means = [sum(r["loss"] for r in tr[4 * e:4 * e + 4]) / 4 for e in range(2)]
    check("trace: the records average to metrics.jsonl's train_loss",
          len(tr) == 8 and all(abs(a - m["train_loss"]) < 1e-9 for a, m in zip(means, ms)),
          "%s vs %s" % (means, [m["train_loss"] for m in ms]))
    ph = records("trace", "phases")
    spent = sum(p["data"] + p["forward"] + p["backward"] + p["optimizer"] + sum(p["methods"].values()) for p in ph)
    check("phases: one record per evaluation, adding up to at most the training seconds",
          len(ph) == 2 and 0 < spent <= ms[-1]["wall_s"] * 1.02, "%r vs %r" % (spent, ms[-1]["wall_s"]))
else:
    check("trace run", False)


# Every method's own metrics ride on the train records: a batch-size warmup's
# batch grows to --batch-size, layer freezing's frozen count only rises.
rc = train("warm", ["--epochs", "1", "--telemetry-every", "4", "--method", "batch-warmup:start=0.25,until=0.5",
                    "--method", "freeze:kind=linear,start=0.5"])
if rc == 0:
    tr = [r["methods"] for r in records("warm", "train")]
    bs, fz = [m["batch_size"] for m in tr], [m["frozen_layers"] for m in tr]
    # A loaded batch of 64 trains as k near-equal parts (21 or 22 for k = 3): k only falls.
    parts = [round(64 / b) for b in bs]
    check("method state in the trace: batch warmup's parts fall to 1 (batch 64), frozen layers only rise",
          parts[0] > 1 and parts[-1] == 1 and all(b <= a for a, b in zip(parts, parts[1:])) and
          fz[0] == 0 and fz[-1] > 0 and all(b >= a for a, b in zip(fz, fz[1:])), "%s / %s" % (bs, fz))
else:
    check("batch-warmup + freeze run", False)


def comparable(name):
    """Records without wall-clock fields; a train record's `methods` too: some
    of those values are as of the last evaluation, and the resumed run has one
    more (at its stop)."""
    return [{k: v for k, v in r.items() if k not in ("wall_s", "methods")} for r in records(name)
            if r["kind"] != "phases"]


extra = ["--epochs", "3", "--telemetry-every", "5", "--method", "prune:schedule=rigl,target=0.8,frequency=10,end=0.75",
         "--method", "select:kind=infobatch,ratio=0.5"]
rc1 = train("straight", extra)
rc2 = train("resumed", extra + ["--max-steps", "45"])
rc3, _, se = run(BRISK, ["train", "--resume", out("resumed"), "--max-steps", "0"], timeout=300)
check("resume: the same records as an uninterrupted run (pruning and selection)",
      rc1 == rc2 == rc3 == 0 and comparable("straight") == comparable("resumed") and
      {"prune", "select", "train"} <= {r["kind"] for r in comparable("straight")},
      se[-300:] if rc3 else "records differ")

def by_step(n):
    """metrics.jsonl by step, without timings and the train loss (the resumed
    run has one more evaluation, which splits its running mean)."""
    return {m["step"]: {k: v for k, v in m.items() if not k.endswith("_s") and k != "train_loss"} for m in metrics(n)}


a, b = (by_step("straight"), by_step("resumed")) if rc1 == rc2 == rc3 == 0 else ({}, {})
check("resume: the same metrics at each epoch as an uninterrupted run (RigL's regrown count included)",
      len(a) == 3 and all(a[s] == b.get(s) for s in a),
      json.dumps([(s, a[s], b.get(s)) for s in a if a[s] != b.get(s)])[:400])

os.makedirs(out("stale"))
open(os.path.join(out("stale"), "telemetry.jsonl"), "w").write('{"kind": "train", "step": 999}\n')
rc = train("stale", ["--epochs", "1", "--max-steps", "3", "--telemetry-every", "1"])
check("a fresh run replaces a telemetry.jsonl left without a checkpoint",
      rc == 0 and [r["step"] for r in records("stale", "train")] == [1, 2, 3])

rc = train("quiet", ["--epochs", "1", "--max-steps", "3", "--telemetry", "false"])
check("telemetry=false writes no telemetry.jsonl",
      rc == 0 and not os.path.exists(os.path.join(out("quiet"), "telemetry.jsonl")))
rc, _, se = run(BRISK, ["train"] + COMMON + ["--telemetry-every", "0", "--out", out("bad")])
check("telemetry-every=0 is refused naming the key", rc != 0 and "telemetry-every" in se, se[-200:])

# ---------------------------------------------------------------- report
speedup = out("speedup")
os.makedirs(speedup)
json.dump({"baseline": "base", "command": "brisk speedup ...", "hardware": {"cpu": "test", "threads": 1},
           "configs": {"base": {"budgets": [{"budget": 1, "seconds_median": 10.0, "acc_median": 0.88},
                                            {"budget": 2, "seconds_median": 20.0, "acc_median": 0.90}]},
                       "fast": {"budgets": [{"budget": 1, "seconds_median": 6.0, "acc_median": 0.885},
                                            {"budget": 2, "seconds_median": 12.0, "acc_median": 0.895}]}},
           "comparisons": [{"candidate": "fast", "targets": [{"target": 0.885, "baseline_seconds": 15.0,
                                                               "candidate_seconds": 6.0, "speedup": 2.5,
                                                               "speedup_lo": 2.0, "speedup_hi": 3.0}]}]},
          open(os.path.join(speedup, "report.json"), "w"))
# A report of time to a loss (brisk speedup --target-loss, budgets in steps):
# lower is better, so the frontier keeps the lower points.
speedup_loss = out("speedup_loss")
os.makedirs(speedup_loss)
json.dump({"baseline": "base", "command": "brisk speedup --target-loss 1.5 ...", "metric": "loss", "unit": "steps",
           "hardware": {"cpu": "test", "threads": 1},
           "configs": {"base": {"budgets": [{"budget": 500, "seconds_median": 10.0, "acc_median": 0.4,
                                             "quality_median": 1.7},
                                            {"budget": 1000, "seconds_median": 20.0, "acc_median": 0.5,
                                             "quality_median": 1.5}]},
                       "fast": {"budgets": [{"budget": 500, "seconds_median": 6.0, "acc_median": 0.4,
                                             "quality_median": 1.6},
                                            {"budget": 1000, "seconds_median": 12.0, "acc_median": 0.5,
                                             "quality_median": 1.45}]}},
           "comparisons": [{"candidate": "fast", "targets": [{"target": 1.5, "baseline_seconds": 20.0,
                                                               "candidate_seconds": 10.0, "speedup": 2.0,
                                                               "speedup_lo": 1.8, "speedup_hi": 2.2}]}]},
          open(os.path.join(speedup_loss, "report.json"), "w"))
page = out("report.html")
runs = [out(n) for n in ("rigl", "infobatch", "el2n", "grow", "fp16", "trace", "quiet", "warm")]
rc, so, se = run(BRISK, ["report"] + runs + [speedup, speedup_loss, "--out", page], timeout=120)
check("report: writes the page", rc == 0 and os.path.getsize(page) > 100000, se[-300:])
html = open(page).read() if rc == 0 else ""
check("report: no external resource (src/href/url/import to a network)",
      not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", html))
check("report: a run without telemetry is reported with a warning",
      "has no telemetry.jsonl" in se and rc == 0, se[-300:])

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_status(path, shot=None):
    """Loads the page in headless chromium: the status line its script writes."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=20000", "--window-size=1280,2400"]
    if shot:
        args += ["--screenshot=" + shot]
    else:
        args += ["--dump-dom"]
    p = subprocess.run(args + ["file://" + os.path.abspath(path)], capture_output=True, text=True, timeout=180)
    if shot:
        return p.returncode == 0 and os.path.exists(shot)
    m = re.search(r"report-status (\{.*?\})</pre>", p.stdout)
    return json.loads(m.group(1)) if m else None


if CHROMIUM:
    st = browser_status(page)
    check("browser: every chart and picture drawn, no script error",
          st is not None and st["charts"] >= 15 and st["charts"] == st["charts_drawn"] and
          st["pictures"] >= 30 and st["pictures"] == st["pictures_drawn"] and not st["errors"] and
          st["runs"] == 8 and st["speedups"] == 2, json.dumps(st))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                          "--dump-dom", "file://" + os.path.abspath(page)], capture_output=True, text=True,
                         timeout=180).stdout
    check("browser: a loss report is drawn as loss, its targets as target loss",
          "median loss vs median training seconds" in dom and "target loss" in dom and
          "median test accuracy vs median training seconds" in dom, dom[-300:])
    if SHOT:
        check("browser: screenshot", browser_status(page, SHOT))
elif os.environ.get("CI"):
    check("browser: chromium is installed (scripts/install_deps.sh)", False, "chromium not found")
else:
    print("SKIPPED browser checks: chromium not installed (scripts/install_deps.sh installs it)")

# Bad input.
rc, _, se = run(BRISK, ["report", out("nope"), "--out", out("x.html")])
check("report: a missing path is named", rc != 0 and "does not exist" in se and "nope" in se, se)
rc, _, se = run(BRISK, ["report", page, "--out", out("x.html")])
check("report: a file is not a run folder", rc != 0 and "not a run folder" in se, se)
os.makedirs(out("empty"))
rc, _, se = run(BRISK, ["report", out("empty"), "--out", out("x.html")])
check("report: an empty folder is not a run folder", rc != 0 and "not a run folder" in se, se)

shutil.copytree(out("trace"), out("torn"))
with open(os.path.join(out("torn"), "metrics.jsonl"), "a") as f:
    f.write('{"epoch": 3.0, "step": 9')
rc, _, se = run(BRISK, ["report", out("torn"), "--out", out("torn.html")])
check("report: a torn last line: warning, partial report", rc == 0 and "cut short" in se and
      os.path.exists(out("torn.html")), se)
shutil.copytree(out("trace"), out("corrupt"))
lines = open(os.path.join(out("corrupt"), "metrics.jsonl")).read().splitlines()
lines[0] = "{garbage"
open(os.path.join(out("corrupt"), "metrics.jsonl"), "w").write("\n".join(lines) + "\n")
rc, _, se = run(BRISK, ["report", out("corrupt"), "--out", out("corrupt.html")])
check("report: a corrupt line mid-file is an error naming file and line",
      rc != 0 and "metrics.jsonl line 1" in se and not os.path.exists(out("corrupt.html")), se)
shutil.copytree(out("trace"), out("running"))
lines = open(os.path.join(out("running"), "metrics.jsonl")).read().splitlines()
open(os.path.join(out("running"), "metrics.jsonl"), "w").write(lines[0] + "\n")
rc, _, se = run(BRISK, ["report", out("running"), "--out", out("running.html")])
check("report: a run in progress: warning, partial report",
      rc == 0 and "not finished" in se and os.path.exists(out("running.html")), se)
shutil.copytree(out("trace"), out("badtele"))
with open(os.path.join(out("badtele"), "telemetry.jsonl"), "a") as f:
    f.write('{"step": 1}\n')
rc, _, se = run(BRISK, ["report", out("badtele"), "--out", out("x.html")])
check("report: a telemetry record without a kind is refused", rc != 0 and "telemetry.jsonl line" in se, se)

# Hostile strings in a config: shown as text, never run.
shutil.copytree(out("trace"), out("hostile"))
cfg = json.load(open(os.path.join(out("hostile"), "config.json")))
cfg["model"] = "</script><script>document.body.innerHTML='pwned'</script><img src=x onerror=alert(1)>"
cfg["method"] = ["<b>bold</b>"]
json.dump(cfg, open(os.path.join(out("hostile"), "config.json"), "w"))
rc, _, se = run(BRISK, ["report", out("hostile"), "--out", out("hostile.html"), "--title", "<i>t</i>"])
check("report: hostile config strings stay inside the data", rc == 0 and
      "</script><script>document" not in open(out("hostile.html")).read(), se)
if CHROMIUM and rc == 0:
    st = browser_status(out("hostile.html"))
    check("browser: the hostile page still draws, nothing injected ran",
          st is not None and not st["errors"] and st["charts"] == st["charts_drawn"] > 0, json.dumps(st))

rc, _, se = run(BRISK, ["report", out("trace"), "--out", out("x.html")], env={"BRISK_CHARTJS": out("no/chart.js")})
check("report: a missing Chart.js names the package", rc != 0 and "libjs-chart.js" in se, se)
rc, _, se = run(BRISK, ["report", out("trace"), "--bogus"])
check("report: an unknown flag is refused", rc != 0 and "bogus" in se, se)

shutil.rmtree(TMP, ignore_errors=True)
passed = sum(results)
print("%d passed, %d failed" % (passed, len(results) - passed))
sys.exit(0 if passed == len(results) else 1)
