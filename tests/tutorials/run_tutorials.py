"""Runs every command of every tutorial (docs/tutorials/0*.md), so the
tutorials cannot rot.

Each ```sh block's lines run in order, in one scratch folder per run (with
the repository's recipes/ linked in), with the brisk binary on PATH. In the
default short mode each `brisk` command is cut down before it runs:
  brisk train    --epochs N -> 1, and at most 20 steps (--max-steps; a
                 --resume keeps its own);
  brisk speedup  one budget (1 epoch), one seed, one learning rate, 20 steps, no plot.
Every `brisk report --out FILE` must write its page.

Usage: run_tutorials.py BRISK_BINARY [--full] [--only 03] [--workdir DIR] [--screenshots DIR]
--full runs the commands as written (minutes per tutorial); --screenshots
saves each tutorial's first report page as DIR/<tutorial>.png (headless
chromium). Prints 'N passed, M failed'."""
import argparse
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

ap = argparse.ArgumentParser()
ap.add_argument("brisk")
ap.add_argument("--full", action="store_true")
ap.add_argument("--only", default="")
ap.add_argument("--workdir", default="")
ap.add_argument("--screenshots", default="")
args = ap.parse_args()
BRISK = os.path.abspath(args.brisk)
SHORT_STEPS = 20


def blocks(md):
    """Lines of the ```sh blocks of a markdown file, in order."""
    out, inside = [], False
    for line in open(md):
        s = line.rstrip("\n")
        if s.strip().startswith("```"):
            inside = s.strip() == "```sh" if not inside else False
            continue
        if inside and s.strip() and not s.strip().startswith("#"):
            out.append(s.strip())
    return out


def set_flag(words, flag, value):
    """Replaces --flag V (or --flag=V) by --flag value, or appends it."""
    for i, w in enumerate(words):
        if w == flag and i + 1 < len(words):
            words[i + 1] = value
            return words
        if w.startswith(flag + "="):
            words[i] = flag + "=" + value
            return words
    return words + [flag, value]


def flag_value(words, flag):
    for i, w in enumerate(words):
        if w == flag and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(flag + "="):
            return w.split("=", 1)[1]
    return None


def shorten(cmd):
    """The short-mode form of one shell line (only `brisk ...` lines change)."""
    if not cmd.startswith("brisk "):
        return cmd
    words = shlex.split(cmd)
    sub = words[1] if len(words) > 1 else ""
    if sub == "train":
        if "--resume" not in words:
            if flag_value(words, "--epochs") is not None:
                words = set_flag(words, "--epochs", "1")
            ms = flag_value(words, "--max-steps")
            words = set_flag(words, "--max-steps", str(min(int(ms), SHORT_STEPS) if ms and int(ms) > 0 else SHORT_STEPS))
    elif sub == "speedup":
        words = set_flag(words, "--budgets", "1")
        words = set_flag(words, "--seeds", "1")
        words = set_flag(words, "--lr-grid", "1")
        words += ["--set", "max-steps=%d" % SHORT_STEPS, "--no-plot"]
    return " ".join(shlex.quote(w) for w in words)


def screenshot(page, png, height=1700):
    """Saves the part of a report page that shows its first method section
    (or its top): the page's status line says where each section starts;
    chromium shoots the whole page and Debian's matplotlib crops it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return False
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000"]
    url = "file://" + os.path.abspath(page)
    dom = subprocess.run(base + ["--window-size=1200,1800", "--dump-dom", url], capture_output=True, text=True,
                         timeout=180).stdout
    m = re.search(r"report-status (\{.*?\})</pre>", dom)
    status = json.loads(m.group(1)) if m else {}
    starts = [v for k, v in status.get("sections", {}).items()
              if re.match(r"(pruning|data-selection|growth|low-precision|method-state|speedup-report)", k)]
    top = min(starts) if starts else 0
    full = png + ".full.png"
    subprocess.run(base + ["--window-size=1200,%d" % max(status.get("height", 1800), 1800), "--screenshot=" + full, url],
                   capture_output=True, text=True, timeout=180)
    if not os.path.exists(full):
        return False
    crop = ("import matplotlib; matplotlib.use('Agg'); import matplotlib.image as im; a = im.imread(%r); "
            "im.imsave(%r, a[%d:%d])" % (full, png, top, top + height))
    ok = subprocess.run(["/usr/bin/python3", "-c", crop], capture_output=True, text=True).returncode == 0
    os.remove(full)
    return ok and os.path.exists(png)


work = args.workdir or tempfile.mkdtemp(prefix="brisk_tutorials_")
os.makedirs(work, exist_ok=True)
if not os.path.exists(os.path.join(work, "recipes")):
    os.symlink(os.path.join(ROOT, "recipes"), os.path.join(work, "recipes"))
env = dict(os.environ, PATH=os.path.dirname(BRISK) + os.pathsep + os.environ.get("PATH", ""))
# The binary must answer to `brisk` (build/brisk does; a differently named one gets a link).
if os.path.basename(BRISK) != "brisk":
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "brisk")
    if not os.path.exists(link):
        os.symlink(BRISK, link)
    env["PATH"] = bindir + os.pathsep + env["PATH"]

results = []
tutorials = sorted(glob.glob(os.path.join(ROOT, "docs", "tutorials", "0*.md")))
if args.only:
    tutorials = [t for t in tutorials if os.path.basename(t).startswith(args.only)]
for md in tutorials:
    name = os.path.basename(md)[:-3]
    cmds = blocks(md)
    if not cmds:
        results.append(False)
        print("FAIL %s: no ```sh commands" % name)
        continue
    pages = []
    for cmd in cmds:
        run = cmd if args.full else shorten(cmd)
        t0 = time.time()
        p = subprocess.run(["bash", "-c", run], cwd=work, env=env, capture_output=True, text=True, timeout=3600)
        ok = p.returncode == 0
        m = re.match(r"brisk report .*--out\s+(\S+)", run)
        if ok and m:
            page = os.path.join(work, m.group(1).strip("'"))
            ok = os.path.exists(page) and os.path.getsize(page) > 10000
            pages.append(page)
        results.append(ok)
        print("%s %s: %s (%.1f s)" % ("PASS" if ok else "FAIL", name, run, time.time() - t0))
        if not ok:
            print((p.stdout + p.stderr)[-1500:])
    if args.screenshots and pages:
        os.makedirs(args.screenshots, exist_ok=True)
        png = os.path.join(args.screenshots, name + ".png")
        print(("saved " if screenshot(pages[0], png) else "could not save ") + png)

if not args.workdir:
    shutil.rmtree(work, ignore_errors=True)
passed = sum(results)
print("%d passed, %d failed" % (passed, len(results) - passed))
sys.exit(0 if results and passed == len(results) else 1)
