// Experiments (portal-data): #/experiments lists them; #/experiments/:name
// compares an experiment's runs side by side: params and last metric
// values in a table sortable by any metric, the metric curves of the
// selected runs overlaid, and a scatter of a param against a metric.
import { api, h, register, table, lineChart, fmtTime, statusBadge, showError } from "../core.js";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#2457c5", "#c0392b", "#1e8a4c", "#b7791f", "#7d3cbd", "#138496", "#d35400", "#566573"];

register("/experiments", async (root) => {
  const card = h("div", { class: "card" }, h("h1", null, "Experiments"), h("p", { class: "muted" }, "Loading…"));
  root.replaceChildren(card);
  try {
    const { experiments } = await api("GET", "/v1/experiments");
    card.replaceChildren(h("h1", null, "Experiments"), table([
      { title: "Experiment", render: e => h("a", { href: "#/experiments/" + encodeURIComponent(e.name), "data-test": "experiment-link" }, e.name) },
      { title: "Runs", render: e => String(e.job_count) },
      { title: "Last activity", render: e => fmtTime(e.last_activity) },
    ], experiments, { rowAttrs: e => ({ "data-test": "experiment-row", "data-name": e.name }), empty: "No experiments yet: submit a job with an experiment name." }));
  } catch (e) {
    showError(card, e);
  }
});

register("/experiments/:name", async (root, { name }) => {
  const state = {
    runs: [],
    sort: null, // {metric, desc}
    selected: new Set(),
    curves: new Map(), // job ID -> its metrics' points (GET /v1/jobs/:id/metrics)
    curveMetric: "",
    scatterParam: "",
    scatterMetric: "",
  };
  let chart = null;
  const tableBox = h("div", { "data-test": "runs-table" });
  const curveSelect = h("select", { name: "curve-metric", "data-test": "curve-metric", onchange: () => { state.curveMetric = curveSelect.value; drawCurves(); } });
  const chartBox = h("div", { class: "chart", "data-test": "compare-chart" });
  const chartNote = h("p", { class: "muted", "data-test": "compare-note" });
  const paramSelect = h("select", { name: "scatter-param", "data-test": "scatter-param", onchange: () => { state.scatterParam = paramSelect.value; drawScatter(); } });
  const metricSelect = h("select", { name: "scatter-metric", "data-test": "scatter-metric", onchange: () => { state.scatterMetric = metricSelect.value; drawScatter(); } });
  const scatterBox = h("div", { class: "scatter", "data-test": "scatter" });
  const errBox = h("div");

  root.replaceChildren(
    h("div", { class: "toolbar" }, h("a", { href: "#/experiments" }, "← Experiments")),
    h("h1", null, "Experiment ", h("span", { class: "mono", "data-test": "experiment-name" }, name)),
    errBox,
    h("div", { class: "card" }, h("h2", null, "Runs"),
      h("p", { class: "muted" }, "Click a metric's heading to sort by it; tick runs to compare their curves."), tableBox),
    h("div", { class: "grid-2" },
      h("div", { class: "card" }, h("h2", null, "Metric curves"),
        h("div", { class: "toolbar" }, h("label", null, "Metric ", curveSelect)), chartNote, chartBox),
      h("div", { class: "card" }, h("h2", null, "Param against metric"),
        h("div", { class: "toolbar" }, h("label", null, "Param ", paramSelect), h("label", null, "Metric ", metricSelect)), scatterBox)),
  );

  const metricNames = () => [...new Set(state.runs.flatMap(r => Object.keys(r.metrics || {})))].sort();
  const paramNames = () => [...new Set(state.runs.flatMap(r => Object.keys(r.params || {})))].sort();

  function sortedRuns() {
    if (!state.sort) return state.runs;
    const { metric, desc } = state.sort;
    return [...state.runs].sort((a, b) => {
      const av = a.metrics ? a.metrics[metric] : undefined;
      const bv = b.metrics ? b.metrics[metric] : undefined;
      // Runs without the metric come last either way.
      if (av === undefined && bv === undefined) return 0;
      if (av === undefined) return 1;
      if (bv === undefined) return -1;
      return desc ? bv - av : av - bv;
    });
  }

  function sortHeader(metric) {
    const on = state.sort && state.sort.metric === metric;
    const arrow = on ? (state.sort.desc ? " ▼" : " ▲") : "";
    return h("button", {
      type: "button", class: "sort-header" + (on ? " active" : ""), "data-test": "sort-" + metric, "data-metric": metric,
      title: "Sort by " + metric,
      onclick: () => {
        state.sort = on ? { metric, desc: !state.sort.desc } : { metric, desc: false };
        drawTable();
      },
    }, metric + arrow);
  }

  function drawTable() {
    const cols = [
      {
        title: "", render: r => h("input", {
          type: "checkbox", "data-test": "run-select", "data-id": r.id, checked: state.selected.has(r.id),
          "aria-label": "compare " + (r.name || r.id),
          onchange: (ev) => {
            if (ev.target.checked) state.selected.add(r.id); else state.selected.delete(r.id);
            ev.target.closest("tr").classList.toggle("selected", ev.target.checked);
            drawCurves();
            drawScatter();
          },
        }),
      },
      { title: "Run", render: r => h("a", { href: "#/jobs/" + encodeURIComponent(r.id), class: "mono" }, r.name || r.id) },
      { title: "Status", render: r => statusBadge(r.status) },
      ...paramNames().map(p => ({ title: p, render: r => h("span", { class: "mono param" }, (r.params || {})[p] ?? "") })),
      ...metricNames().map(m => ({
        title: sortHeader(m),
        render: r => {
          const v = (r.metrics || {})[m];
          return h("span", { class: "mono", "data-test": "metric-" + m }, v === undefined ? "" : fmtNumber(v));
        },
      })),
    ];
    tableBox.replaceChildren(table(cols, sortedRuns(), {
      rowAttrs: r => ({ "data-test": "run-row", "data-id": r.id, class: state.selected.has(r.id) ? "selected" : null }),
      empty: "This experiment has no runs.",
    }));
  }

  function fillSelect(sel, names, current) {
    sel.replaceChildren(...names.map(n => h("option", { value: n, selected: n === current }, n)));
    if (!names.includes(current)) return names[0] || "";
    return current;
  }

  async function drawCurves() {
    const runs = state.runs.filter(r => state.selected.has(r.id));
    chartBox.setAttribute("data-series", "0");
    if (!runs.length || !state.curveMetric) {
      if (chart) { chart.destroy(); chart = null; }
      chartBox.replaceChildren();
      chartNote.textContent = state.curveMetric ? "Select runs in the table to overlay their curves." : "No metrics logged yet.";
      return;
    }
    chartNote.textContent = "";
    try {
      await Promise.all(runs.filter(r => !state.curves.has(r.id)).map(async r => {
        const m = await api("GET", "/v1/jobs/" + encodeURIComponent(r.id) + "/metrics");
        state.curves.set(r.id, (m && m.metrics) || {});
      }));
    } catch (e) {
      showError(errBox, e);
      return;
    }
    // A newer call may have changed the selection meanwhile: draw what is selected now.
    const now = state.runs.filter(r => state.selected.has(r.id) && state.curves.has(r.id));
    const series = now.map(r => ({
      label: r.name || r.id,
      points: (state.curves.get(r.id)[state.curveMetric] || []).map(p => [p.step, p.value]),
    }));
    if (chart) chart.destroy();
    chartBox.replaceChildren();
    chart = lineChart(chartBox, { title: state.curveMetric, xLabel: "step", series });
    chartBox.setAttribute("data-series", String(series.length));
  }

  function drawScatter() {
    const p = state.scatterParam, m = state.scatterMetric;
    scatterBox.replaceChildren();
    if (!p || !m) {
      scatterBox.append(h("p", { class: "muted" }, "Needs runs with a logged param and metric."));
      return;
    }
    const pts = state.runs
      .filter(r => r.params && r.params[p] !== undefined && r.metrics && r.metrics[m] !== undefined)
      .map(r => ({ run: r, raw: r.params[p], y: r.metrics[m] }));
    if (!pts.length) {
      scatterBox.append(h("p", { class: "muted" }, "No run has both " + p + " and " + m + "."));
      return;
    }
    // A param that is not a number everywhere is shown as categories.
    const numeric = pts.every(q => q.raw.trim() !== "" && isFinite(Number(q.raw)));
    const cats = numeric ? [] : [...new Set(pts.map(q => q.raw))].sort();
    for (const q of pts) q.x = numeric ? Number(q.raw) : cats.indexOf(q.raw);
    const W = 460, H = 260, L = 56, R = 16, T = 16, B = 40;
    const ext = (vs) => { let lo = Math.min(...vs), hi = Math.max(...vs); if (lo === hi) { lo -= 1; hi += 1; } const pad = (hi - lo) * 0.08; return [lo - pad, hi + pad]; };
    const [x0, x1] = numeric ? ext(pts.map(q => q.x)) : [-0.5, cats.length - 0.5];
    const [y0, y1] = ext(pts.map(q => q.y));
    const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": m + " against " + p, "data-test": "scatter-svg" });
    svg.append(
      svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
      svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }),
    );
    const xticks = numeric ? ticks(x0, x1) : cats.map((c, i) => [i, c]);
    for (const [v, label] of xticks) {
      svg.append(svgEl("line", { x1: sx(v), y1: H - B, x2: sx(v), y2: H - B + 4, class: "axis" }),
        svgText(sx(v), H - B + 16, label, "middle"));
    }
    for (const [v, label] of ticks(y0, y1)) {
      svg.append(svgEl("line", { x1: L - 4, y1: sy(v), x2: L, y2: sy(v), class: "axis" }),
        svgText(L - 6, sy(v) + 4, label, "end"));
    }
    svg.append(svgText((L + W - R) / 2, H - 4, p, "middle", "axis-label"),
      svgText(12, T + 4, m, "start", "axis-label"));
    const selectedRuns = state.runs.filter(r => state.selected.has(r.id));
    for (const q of pts) {
      const i = selectedRuns.indexOf(q.run);
      const dot = svgEl("circle", {
        cx: sx(q.x), cy: sy(q.y), r: i >= 0 ? 6 : 4, "data-test": "scatter-point", "data-id": q.run.id,
        fill: i >= 0 ? PALETTE[i % PALETTE.length] : "#9aa4b1", class: "point" + (i >= 0 ? " selected" : ""),
      });
      const tip = svgEl("title", {});
      tip.textContent = `${q.run.name || q.run.id}: ${p}=${q.raw}, ${m}=${fmtNumber(q.y)}`;
      dot.append(tip);
      svg.append(dot);
    }
    scatterBox.append(svg);
  }

  function drawControls() {
    // A loss is the usual curve to compare; else the first metric.
    state.curveMetric = state.curveMetric || metricNames().find(m => /loss/i.test(m)) || "";
    state.curveMetric = fillSelect(curveSelect, metricNames(), state.curveMetric);
    state.scatterParam = fillSelect(paramSelect, paramNames(), state.scatterParam);
    // Against the metric the table is sorted by, else one that is not the curve's.
    state.scatterMetric = state.scatterMetric || metricNames().find(m => m !== state.curveMetric) || "";
    state.scatterMetric = fillSelect(metricSelect, metricNames(), state.scatterMetric);
  }

  try {
    const res = await api("GET", "/v1/experiments/" + encodeURIComponent(name) + "/jobs?limit=1000");
    state.runs = res.jobs || [];
  } catch (e) {
    if (e.status === 404) {
      showError(errBox, e);
      return () => {};
    }
    throw e;
  }
  drawControls();
  drawTable();
  drawCurves();
  drawScatter();
  return () => { if (chart) chart.destroy(); chart = null; };
});

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function svgText(x, y, text, anchor, cls) {
  const t = svgEl("text", { x, y, "text-anchor": anchor, class: cls || "tick" });
  t.textContent = String(text);
  return t;
}

// ticks gives about five round values between lo and hi, with their labels.
function ticks(lo, hi) {
  const span = hi - lo;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / 5)));
  const step = [1, 2, 5, 10].map(k => k * step0).find(s => span / s <= 6) || step0 * 10;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push([v, fmtNumber(v)]);
  return out;
}

function fmtNumber(v) {
  if (!isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(3);
  return String(Number(v.toPrecision(6)));
}

