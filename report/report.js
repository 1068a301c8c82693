// The page script of `brisk report` (compiled into brisk, inlined in every
// page). It reads the JSON object that brisk wrote into #report-data and
// draws everything with Chart.js (inlined before it) and plain canvases.
// When done it writes a status line into #report-status:
//   report-status {"charts":N,"charts_drawn":N,"pictures":M,"pictures_drawn":M,"errors":[]}
// which the browser test reads (a chart counts as drawn when its canvas has
// painted pixels).
(function () {
  "use strict";
  const errors = [];
  window.addEventListener("error", (e) => errors.push(String(e.message || e)));
  const consoleError = console.error;
  console.error = function (...a) {
    errors.push(a.map(String).join(" "));
    consoleError.apply(console, a);
  };

  const data = JSON.parse(document.getElementById("report-data").textContent);
  const root = document.getElementById("report");
  const charts = [];    // canvases Chart.js draws
  const pictures = [];  // canvases drawn here (mask heatmaps, dataset images)
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];
  const color = (i) => palette[i % palette.length];
  const classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"];

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }
  // Sections get ids from their titles ("Pruning in rigl" -> #pruning-in-rigl),
  // so a link (or a screenshot) can open the page at one of them.
  function section(title, parent) {
    const id = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
    const s = el("section", { id }, el("h2", {}, title));
    (parent || root).append(s);
    return s;
  }
  function grid(parent) {
    const g = el("div", { class: "grid" });
    parent.append(g);
    return g;
  }
  function note(parent, text) { parent.append(el("p", { class: "note" }, text)); }
  const num = (v, d) => (typeof v === "number" && isFinite(v) ? v.toFixed(d === undefined ? 4 : d) : "-");
  const last = (a) => (a && a.length ? a[a.length - 1] : undefined);

  // series: [{label, points: [{x, y}], stepped, dashed, color}]
  function lineChart(parent, title, series, opt) {
    opt = opt || {};
    series = series.filter((s) => s.points.length > 0);
    const box = el("div", {}, el("h3", {}, title));
    parent.append(box);
    if (!series.length) { note(box, "no data recorded"); return; }
    const cv = el("canvas");
    box.append(el("div", { class: "chart" }, cv));
    charts.push(cv);
    new Chart(cv, {
      type: "line",
      data: {
        datasets: series.map((s, i) => ({
          label: s.label, data: s.points, borderColor: s.color || color(i), backgroundColor: s.color || color(i),
          borderWidth: 1.5, pointRadius: s.points.length > 60 ? 0 : 2, stepped: s.stepped ? "after" : false,
          borderDash: s.dashed ? [6, 4] : [], showLine: s.showLine !== false,
        })),
      },
      options: {
        parsing: false, normalized: true,
        scales: {
          x: { type: "linear", title: { display: true, text: opt.x || "step" } },
          y: { type: opt.logY ? "logarithmic" : "linear", title: { display: true, text: opt.y || "" },
               min: opt.yMin, max: opt.yMax },
        },
        plugins: { legend: { display: series.length > 1 || !!opt.legend } },
      },
    });
  }
  function barChart(parent, title, labels, datasets, opt) {
    opt = opt || {};
    const box = el("div", {}, el("h3", {}, title));
    parent.append(box);
    if (!labels.length) { note(box, "no data recorded"); return; }
    const cv = el("canvas");
    box.append(el("div", { class: "chart" }, cv));
    charts.push(cv);
    new Chart(cv, {
      type: "bar",
      data: { labels, datasets: datasets.map((d, i) => ({ backgroundColor: d.color || color(i), ...d })) },
      options: {
        indexAxis: opt.horizontal ? "y" : "x",
        scales: {
          x: { stacked: !!opt.stacked, title: { display: !!opt.x, text: opt.x || "" } },
          y: { stacked: !!opt.stacked, title: { display: !!opt.y, text: opt.y || "" } },
        },
        plugins: { legend: { display: datasets.length > 1 } },
      },
    });
  }
  function table(parent, headers, rows, leftCols) {
    leftCols = leftCols || 1;
    const t = el("table");
    t.append(el("tr", {}, ...headers.map((h, i) => el("th", { class: i < leftCols ? "l" : "" }, h))));
    for (const r of rows) t.append(el("tr", {}, ...r.map((c, i) => el("td", { class: i < leftCols ? "l" : "" }, c))));
    parent.append(t);
  }

  // ---- runs: summary and shared curves ----
  const runs = data.runs || [];
  for (const w of data.warnings || []) root.append(el("div", { class: "warn" }, w));
  root.append(el("p", { class: "note" }, "brisk " + data.version + ", generated " + data.generated + "."));

  const tele = (r, kind) => (r.telemetry && r.telemetry[kind]) || [];
  const methodsOf = (r) => [].concat((r.config && r.config.method) || []);
  if (runs.length) {
    const s = section("Runs");
    table(s, ["run", "model", "data", "methods", "status", "evals", "steps", "train s", "final acc", "best acc",
              "final loss"],
          runs.map((r) => {
            const m = r.metrics, f = last(m) || {};
            const best = m.reduce((a, x) => Math.max(a, x.test_acc || 0), 0);
            return [r.name, (r.config || {}).model || "-", (r.config || {}).data || "-",
                    methodsOf(r).join(" ") || "(none)", r.status, m.length, f.step === undefined ? "-" : f.step,
                    num(f.wall_s, 1), num(f.test_acc), m.length ? num(best) : "-", num(f.test_loss)];
          }), 5);

    const c = section("Training curves (all runs, shared axes)");
    note(c, "Seconds are training time: evaluation and checkpointing excluded, every method's overhead included.");
    const g = grid(c);
    const perRun = (fx, fy, src) => runs.map((r, i) => ({
      label: r.name, color: color(i),
      points: (src ? src(r) : r.metrics).filter((m) => typeof fx(m) === "number" && typeof fy(m) === "number" &&
                                                        isFinite(fy(m))).map((m) => ({ x: fx(m), y: fy(m) })),
    }));
    const trainSrc = (r) => {
      const t = tele(r, "train");
      return t.length ? t.map((x) => ({ step: x.step, wall_s: x.wall_s, loss: x.loss, lr: x.lr }))
                      : r.metrics.map((x) => ({ step: x.step, wall_s: x.wall_s, loss: x.train_loss, lr: x.lr }));
    };
    const isLM = runs.some((r) => r.metrics.some((m) => "val_loss" in m));
    lineChart(g, "test accuracy vs step", perRun((m) => m.step, (m) => m.test_acc), { y: "test accuracy" });
    lineChart(g, "test accuracy vs training seconds", perRun((m) => m.wall_s, (m) => m.test_acc),
              { x: "seconds", y: "test accuracy" });
    lineChart(g, (isLM ? "validation" : "test") + " loss vs step", perRun((m) => m.step, (m) => m.test_loss),
              { y: "loss" });
    lineChart(g, (isLM ? "validation" : "test") + " loss vs training seconds",
              perRun((m) => m.wall_s, (m) => m.test_loss), { x: "seconds", y: "loss" });
    lineChart(g, "training loss vs step", perRun((m) => m.step, (m) => m.loss, trainSrc), { y: "loss" });
    lineChart(g, "training loss vs training seconds", perRun((m) => m.wall_s, (m) => m.loss, trainSrc),
              { x: "seconds", y: "loss" });
    lineChart(g, "learning rate", perRun((m) => m.step, (m) => m.lr, trainSrc), { y: "lr" });

    // Time per phase, summed over the "phases" records (each covers one evaluation interval).
    const phaseNames = ["data", "forward", "backward", "optimizer", "communicate", "eval"];
    const methodNames = new Set();
    const totals = runs.map((r) => {
      const t = {};
      for (const p of tele(r, "phases")) {
        for (const k of phaseNames) t[k] = (t[k] || 0) + (p[k] || 0);
        for (const [k, v] of Object.entries(p.methods || {})) { methodNames.add(k); t["method: " + k] = (t["method: " + k] || 0) + v; }
      }
      return t;
    });
    const keys = phaseNames.concat([...methodNames].map((k) => "method: " + k));
    const withPhases = runs.map((r, i) => i).filter((i) => tele(runs[i], "phases").length);
    const pg = grid(c);
    barChart(pg, "time per phase (seconds)", withPhases.map((i) => runs[i].name),
             keys.map((k) => ({ label: k, data: withPhases.map((i) => totals[i][k] || 0) })),
             { stacked: true, horizontal: true, x: "seconds" });
  }

  // ---- per run: what each method decided ----
  function maskCanvas(pic) {
    const cells = pic.cells || "", rows = pic.rows, cols = pic.cols;
    const scale = Math.max(1, Math.floor(128 / Math.max(rows, cols)));
    const cv = el("canvas", { class: "px", width: cols * scale, height: rows * scale });
    const ctx = cv.getContext("2d");
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) {
        const kept = parseInt(cells[i * cols + j], 16) / 15;  // 1: all kept (dark), 0: all pruned (white)
        const v = Math.round(255 * (1 - kept));
        ctx.fillStyle = "rgb(" + v + "," + v + "," + 255 + ")";
        ctx.fillRect(j * scale, i * scale, scale, scale);
      }
    pictures.push(cv);
    return cv;
  }
  function imageCanvas(img) {
    const side = img.side, hex = img.pixels, scale = 3;
    const cv = el("canvas", { class: "px", width: side * scale, height: side * scale });
    const ctx = cv.getContext("2d");
    for (let k = 0; k < side * side; k++) {
      const v = parseInt(hex.substr(2 * k, 2), 16);
      ctx.fillStyle = "rgb(" + v + "," + v + "," + v + ")";
      ctx.fillRect((k % side) * scale, Math.floor(k / side) * scale, scale, scale);
    }
    pictures.push(cv);
    return cv;
  }
  const pick = (a, n) => a.length <= n ? a : Array.from({ length: n }, (_, i) => a[Math.round(i * (a.length - 1) / (n - 1))]);

  function pruneSection(parent, r) {
    const recs = tele(r, "prune");
    if (!recs.length) return;
    const s = section("Pruning in " + r.name, parent);
    const masked = recs.filter((x) => x.layers);
    const g = grid(s);
    const layerNames = [...new Set(masked.flatMap((x) => x.layers.map((l) => l.name)))];
    const overall = { label: "all masked weights", points: recs.map((x) => ({ x: x.step, y: x.sparsity })), stepped: true, color: "#000" };
    lineChart(g, "sparsity at each mask update", [overall].concat(layerNames.map((n, i) => ({
      label: n, color: color(i), stepped: true,
      points: masked.flatMap((x) => x.layers.filter((l) => l.name === n).map((l) => ({ x: x.step, y: l.sparsity }))),
    }))), { y: "fraction pruned", yMin: 0, yMax: 1 });
    if (masked.length > 1 && masked.some((x) => x.layers.some((l) => l.grown > 0))) {
      barChart(g, "weights dropped and regrown per update", masked.map((x) => "step " + x.step), [
        { label: "dropped", data: masked.map((x) => x.layers.reduce((a, l) => a + l.dropped, 0)) },
        { label: "grown", data: masked.map((x) => x.layers.reduce((a, l) => a + l.grown, 0)) },
      ]);
    }
    for (const n of layerNames) {
      const snaps = pick(masked.filter((x) => x.layers.some((l) => l.name === n)), 6);
      s.append(el("h3", {}, "mask of " + n + " (dark: kept; each cell averages a block of weights)"));
      const row = el("div", { class: "masks" });
      for (const x of snaps) {
        const l = x.layers.find((q) => q.name === n);
        row.append(el("figure", {}, maskCanvas(l.mask),
                      el("figcaption", {}, "step " + x.step + ", " + (100 * l.sparsity).toFixed(1) + "% pruned, " +
                         l.mask.shape.join("x"))));
      }
      s.append(row);
    }
    const channel = recs.filter((x) => x.method === "channel");
    for (const x of channel) {
      note(s, "channel pruning at step " + x.step + ": parameters " + x.params_before + " -> " + x.params_after);
      table(s, ["channel group", "width before", "width after"], x.groups.map((q) => [q.name, q.width_before, q.width_after]));
    }
  }

  function selectSection(parent, r) {
    const recs = tele(r, "select");
    if (!recs.length) return;
    const s = section("Data selection in " + r.name + " (" + recs[0].method + ")", parent);
    const g = grid(s);
    barChart(g, "fraction of the data backpropagated per epoch", recs.map((x) => "epoch " + x.epoch_done),
             [{ label: "kept", data: recs.map((x) => x.kept_frac) }], { y: "fraction" });
    const h = last(recs).histogram;
    if (h && h.counts) {
      const w = (h.hi - h.lo) / h.counts.length;
      barChart(g, "histogram of " + last(recs).score + " after epoch " + last(recs).epoch_done,
               h.counts.map((_, i) => num(h.lo + (i + 0.5) * w, 3)), [{ label: "examples", data: h.counts }],
               { x: last(recs).score, y: "examples" });
    }
    const imgs = r.images || {};
    for (const [key, title] of [["most_kept", "most often kept"], ["least_kept", "least often kept"]]) {
      const ex = last(recs)[key] || [];
      s.append(el("h3", {}, "the " + ex.length + " examples " + title + " (times kept / seen, last loss)"));
      const row = el("div", { class: "images" });
      for (const e of ex) {
        const img = imgs[String(e.index)];
        row.append(el("figure", {}, img ? imageCanvas(img) : el("span", {}, "#" + e.index),
                      el("figcaption", {}, "#" + e.index + (img ? " " + classes[img.label] : ""), el("br"),
                         e.times_kept + "/" + e.times_seen + ", " + num(e.last_loss, 3))));
      }
      s.append(row);
    }
  }

  function growSection(parent, r) {
    const recs = tele(r, "grow");
    if (!recs.length) return;
    const s = section("Growth in " + r.name + " (" + recs[0].method + ")", parent);
    const g = grid(s);
    const f = last(r.metrics) || {};
    const pts = recs.map((x) => ({ x: x.step, y: x.params_after }));
    if (f.step !== undefined) pts.push({ x: f.step, y: last(recs).params_after });
    lineChart(g, "parameters over training", [{ label: "parameters", points: pts, stepped: true }], { y: "parameters" });
    table(s, ["event", "step", "s", "width", "params before", "params after", "loss before", "loss after", "tensors changed"],
          recs.map((x) => [x.event, x.step, num(x.wall_s, 1), num(x.width, 3), x.params_before, x.params_after,
                           num(x.loss_before), num(x.loss_after),
                           (x.changed || []).map((c) => c.name + " " + JSON.stringify(c.before) + "->" + JSON.stringify(c.after)).join("; ")]));
    note(s, "loss before/after: the same batch in eval mode just before and just after the surgery; " +
            "equal when the growth preserves the function.");
  }

  function precisionSection(parent, r) {
    const recs = tele(r, "precision");
    if (!recs.length) return;
    const s = section("Low precision in " + r.name + " (" + recs[0].dtype + ")", parent);
    const g = grid(s);
    lineChart(g, "loss scale", [{ label: "loss scale", points: recs.map((x) => ({ x: x.step, y: x.loss_scale })), stepped: true }],
              { y: "scale", logY: recs.some((x) => x.loss_scale > 1) });
    lineChart(g, "skipped steps (non-finite gradients)", [{ label: "skipped", points: recs.map((x) => ({ x: x.step, y: x.skipped_steps })), stepped: true }],
              { y: "steps" });
    const layers = last(recs).layers || [];
    if (layers.length) {
      const mx = (k) => layers.map((l) => Math.max(...recs.map((x) => ((x.layers || []).find((q) => q.name === l.name) || {})[k] || 0)));
      barChart(g, "fraction of values that would round to zero in " + recs[0].dtype + " (max over the run)",
               layers.map((l) => l.name), [{ label: "gradients (scaled)", data: mx("grad_underflow") },
                                           { label: "weights", data: mx("weight_underflow") }], { horizontal: true });
      barChart(g, "fraction of values that would overflow in " + recs[0].dtype + " (max over the run)",
               layers.map((l) => l.name), [{ label: "gradients (scaled)", data: mx("grad_overflow") },
                                           { label: "weights", data: mx("weight_overflow") }], { horizontal: true });
    }
  }

  // Every method's own metrics (image side, frozen layers, batch size, kept
  // fraction, ...) as the training-loss records carry them: one chart per
  // quantity that changes during the run.
  function methodStateSection(parent, r) {
    const recs = tele(r, "train").filter((x) => x.methods);
    const keys = [...new Set(recs.flatMap((x) => Object.keys(x.methods)))].filter((k) => {
      const v = recs.map((x) => x.methods[k]).filter((y) => typeof y === "number");
      return v.length > 1 && v.some((y) => y !== v[0]);
    });
    if (!keys.length) return;
    const s = section("Method state over training in " + r.name + " (" + methodsOf(r).join(" ") + ")", parent);
    const g = grid(s);
    for (const k of keys.slice(0, 12))
      lineChart(g, k, [{ label: k, stepped: true, points: recs.filter((x) => typeof x.methods[k] === "number")
                                                         .map((x) => ({ x: x.step, y: x.methods[k] })) }], { y: k });
  }

  for (const r of runs) {
    methodStateSection(root, r);
    const anyMethod = ["prune", "select", "grow", "precision"].some((k) => tele(r, k).length);
    if (!anyMethod) continue;
    pruneSection(root, r);
    selectSection(root, r);
    growSection(root, r);
    precisionSection(root, r);
  }

  // ---- speedup reports: the Pareto frontier ----
  for (const sp of data.speedups || []) {
    const rep = sp.report, s = section("Speedup report " + sp.name);
    if (rep.command) note(s, rep.command);
    if (rep.hardware) note(s, "hardware: " + rep.hardware.cpu + ", " + rep.hardware.threads + " threads");
    const names = Object.keys(rep.configs);
    const loss = rep.metric === "loss";  // --target-loss: lower is better
    const what = loss ? "loss" : "test accuracy";
    const all = [];
    const series = names.map((n, i) => {
      const pts = (rep.configs[n].budgets || []).map((b) => ({
        x: b.seconds_median, y: "quality_median" in b ? b.quality_median : b.acc_median, budget: b.budget }));
      for (const p of pts) all.push(p);
      return { label: n + (n === rep.baseline ? " (baseline)" : ""), color: color(i), points: pts };
    });
    // Frontier: points no other point beats on both time (lower) and quality
    // (higher accuracy, or lower loss).
    const better = (a, b) => (loss ? a < b : a > b);
    const front = all.filter((p) => !all.some((q) => q !== p && q.x <= p.x && !better(p.y, q.y) && (q.x < p.x || better(q.y, p.y))))
                     .sort((a, b) => a.x - b.x);
    series.push({ label: "Pareto frontier", color: "#000", dashed: true, points: front, stepped: true });
    const g = grid(s);
    lineChart(g, "median " + what + " vs median training seconds (one point per budget, in " + (rep.unit || "epochs") + ")",
              series, { x: "seconds", y: what, legend: true });
    const rows = [];
    for (const c of rep.comparisons || [])
      for (const t of c.targets || [])
        rows.push([c.candidate, t.target, num(t.baseline_seconds, 1), num(t.candidate_seconds, 1),
                   typeof t.speedup === "number" ? num(t.speedup, 2) + "x [" + num(t.speedup_lo, 2) + ", " + num(t.speedup_hi, 2) + "]" : "-",
                   t.verdict || ""]);
    table(s, ["candidate", loss ? "target loss" : "target acc", "baseline s", "candidate s", "speedup [range]", "verdict"], rows);
  }
  if (!runs.length && !(data.speedups || []).length) note(root, "nothing to report");

  // The page was built after the browser looked for #anchor: go there now.
  if (location.hash) {
    const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) target.scrollIntoView();
  }

  // ---- status for the browser test ----
  function painted(cv) {
    try {
      const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
      for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
    } catch (e) { errors.push("reading a canvas: " + e); }
    return false;
  }
  const status = {
    runs: runs.length, speedups: (data.speedups || []).length,
    charts: charts.length, charts_drawn: charts.filter(painted).length,
    pictures: pictures.length, pictures_drawn: pictures.filter(painted).length, errors,
    // Where each section starts on the page (pixels), for screenshots of one part.
    height: document.body.scrollHeight,
    sections: Object.fromEntries([...document.querySelectorAll("section")].map(
      (e) => [e.id, Math.round(e.getBoundingClientRect().top + window.scrollY)])),
  };
  document.getElementById("report-status").textContent = "report-status " + JSON.stringify(status);
})();
