// #/jobs/:id: one job (portal-core): its state and spec, attempts, live
// log, metric charts, params and tags, artifacts, children, cancel, re-run.
import {
  api, apiFetch, h, register, navigate, poll, table, fmtTime, fmtDuration, statusBadge, showError, can, lineChart,
} from "../core.js";
import { dump } from "/ui/vendor/js-yaml.mjs";

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const MAX_LOG_LINES = 20000;

register("/jobs/:id", (root, { id }, query) => {
  const path = "/v1/jobs/" + encodeURIComponent(id);
  const err = h("div");
  const head = h("div");
  const notice = h("div");
  const details = h("div", { class: "card" });
  const spec = h("pre", { class: "spec mono", "data-test": "job-spec" });
  const attempts = h("div", { "data-test": "attempts" });
  const paramsTags = h("div", { class: "grid-2" });
  const charts = h("div", { class: "charts", "data-test": "charts" });
  const artifacts = h("div", { "data-test": "artifacts" });
  const children = h("div", { "data-test": "children" });
  const log = logView(path, id);

  if (query.get("rerun_of")) {
    notice.replaceChildren(h("div", { class: "notice", "data-test": "rerun-notice" },
      "This is a new job, submitted with the spec of ",
      h("a", { href: "#/jobs/" + encodeURIComponent(query.get("rerun_of")) }, query.get("rerun_of")), "."));
  }

  root.replaceChildren(
    err, head, notice,
    h("div", { class: "grid-2" }, details, h("div", { class: "card" }, h("h2", null, "Spec"), spec)),
    h("div", { class: "card" }, h("h2", null, "Log"), log.el),
    h("div", { class: "card" }, h("h2", null, "Metrics"), charts),
    h("div", { class: "card" }, h("h2", null, "Attempts"), attempts),
    paramsTags,
    h("div", { class: "grid-2" },
      h("div", { class: "card" }, h("h2", null, "Artifacts"), artifacts),
      h("div", { class: "card" }, h("h2", null, "Children"), children)),
  );

  let job = null;
  let stopped = false;
  const chartsByName = new Map();
  let artifactPrefix = "";

  async function refreshJob() {
    try {
      job = await api("GET", path);
    } catch (e) {
      showError(err, e);
      return;
    }
    err.replaceChildren();
    renderHead();
    renderDetails();
    spec.textContent = dump(job.spec || {}, { noRefs: true, lineWidth: 120 });
    renderAttempts();
    renderParamsTags();
    log.ensure(job);
  }

  function renderHead() {
    const buttons = [];
    if (can("submit") && !TERMINAL.has(job.status)) {
      buttons.push(h("button", {
        class: "btn btn-danger", type: "button", "data-test": "cancel-button", disabled: job.cancel_requested,
        onclick: async (ev) => {
          ev.target.disabled = true;
          try { job = await api("POST", path + "/cancel"); renderHead(); renderDetails(); } catch (e) { showError(err, e); ev.target.disabled = false; }
        },
      }, job.cancel_requested ? "Canceling…" : "Cancel"));
    }
    if (can("submit")) {
      buttons.push(h("button", {
        class: "btn", type: "button", "data-test": "rerun-button", title: "Submits a new job with this job's spec",
        onclick: async (ev) => {
          if (job.spec.notify && job.spec.notify.secret === "***") {
            // The API never shows a callback's secret again: a re-run would sign with "***".
            showError(err, new Error("This job's callback has a secret the API does not show again: submit it from its spec file instead."));
            return;
          }
          ev.target.disabled = true;
          try {
            const nj = await api("POST", "/v1/jobs", job.spec);
            navigate("#/jobs/" + encodeURIComponent(nj.id) + "?rerun_of=" + encodeURIComponent(job.id));
          } catch (e) { showError(err, e); ev.target.disabled = false; }
        },
      }, "Re-run as a new job"));
    }
    head.replaceChildren(h("div", { class: "toolbar" },
      h("h1", { "data-test": "job-title" }, job.name || job.id),
      h("span", { "data-test": "job-status", "data-status": job.status }, statusBadge(job.status)),
      h("span", { class: "muted mono" }, job.id),
      h("span", { class: "toolbar" }, buttons)));
  }

  function renderDetails() {
    const kv = [
      ["Status", job.status + (job.cancel_requested ? " (cancel requested)" : "")],
      ["Reason", job.reason ? `${job.reason}${job.reason_code ? " [" + job.reason_code + "]" : ""}` : ""],
      ["Exit code", job.exit_code === undefined || job.exit_code === null ? "" : String(job.exit_code)],
      ["Attempt", String(job.attempt || 0)],
      ["Queue position", job.queue_position === undefined || job.queue_position === null ? "" : String(job.queue_position)],
      ["Worker", job.worker || ""],
      ["GPUs", (job.gpus || []).join(", ")],
      ["Experiment", job.experiment ? h("a", { href: "#/experiments/" + encodeURIComponent(job.experiment) }, job.experiment) : ""],
      ["Workspace", job.workspace],
      ["Created", fmtTime(job.created_at)],
      ["Started", fmtTime(job.started_at)],
      ["Finished", fmtTime(job.finished_at)],
      ["Duration", job.started_at ? fmtDuration(((job.finished_at ? new Date(job.finished_at) : new Date()) - new Date(job.started_at)) / 1000) : ""],
      ["Trace", job.trace_id || ""],
    ].filter(([, v]) => v !== "");
    details.replaceChildren(h("h2", null, "Details"),
      h("dl", { class: "kv", "data-test": "job-details" }, kv.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])));
  }

  function renderAttempts() {
    const rows = [...(job.attempts || [])];
    if (!TERMINAL.has(job.status) && job.attempt > 0 && !rows.some(a => a.attempt === job.attempt)) {
      rows.push({ attempt: job.attempt, worker: job.worker, status: job.status, started_at: job.started_at, current: true });
    }
    attempts.replaceChildren(table([
      { title: "#", render: a => String(a.attempt) },
      { title: "Status", render: a => statusBadge(a.status) },
      { title: "Reason", render: a => [a.reason || "", a.reason_code ? h("span", { class: "muted" }, " [" + a.reason_code + "]") : "", a.note ? h("div", { class: "muted" }, a.note) : ""] },
      { title: "Exit", render: a => a.exit_code === undefined || a.exit_code === null ? "" : String(a.exit_code) },
      { title: "Worker", render: a => a.worker || "" },
      { title: "Started", render: a => fmtTime(a.started_at) },
      { title: "Finished", render: a => a.current ? "running" : fmtTime(a.finished_at) },
    ], rows, { rowAttrs: a => ({ "data-test": "attempt-row" }), empty: "No attempt has run yet." }));
  }

  function renderParamsTags() {
    const kvTable = (obj, test) => {
      const rows = Object.entries(obj || {}).sort(([a], [b]) => a.localeCompare(b));
      return h("div", { "data-test": test }, table([
        { title: "Name", render: r => h("span", { class: "mono" }, r[0]) },
        { title: "Value", render: r => h("span", { class: "mono" }, r[1]) },
      ], rows, { empty: "None." }));
    };
    paramsTags.replaceChildren(
      h("div", { class: "card" }, h("h2", null, "Params"), kvTable(job.params, "params")),
      h("div", { class: "card" }, h("h2", null, "Tags"), kvTable(job.tags, "tags")));
  }

  // Metrics: one chart per metric, step on x, one series per attempt (a
  // point belongs to the attempt that was running when it was reported).
  async function refreshMetrics() {
    let m;
    try { m = await api("GET", path + "/metrics"); } catch (e) { return; }
    const names = Object.keys(m.metrics || {}).sort();
    if (!names.length && !chartsByName.size) {
      charts.replaceChildren(h("p", { class: "muted", "data-test": "no-metrics" }, "No metrics reported yet (a job prints ::metric name=loss value=0.3 step=1)."));
      return;
    }
    for (const name of names) {
      const series = seriesByAttempt(m.metrics[name], job);
      let c = chartsByName.get(name);
      if (!c) {
        if (!chartsByName.size) charts.replaceChildren();
        const el = h("div", { class: "chart", "data-test": "chart-" + name.replace(/[^A-Za-z0-9_.-]/g, "_"), "data-metric": name });
        charts.appendChild(el);
        c = lineChart(el, { title: name, xLabel: "step", series });
        chartsByName.set(name, c);
      } else {
        c.update(series);
      }
    }
  }

  async function refreshArtifacts() {
    let list;
    try { list = await api("GET", path + "/artifacts"); } catch (e) { showError(artifacts, e); return; }
    renderArtifacts(list.artifacts || []);
  }

  function renderArtifacts(all) {
    // Browse by folder: the entries right below artifactPrefix.
    const dirs = new Map(), files = [];
    for (const a of all) {
      if (!a.path.startsWith(artifactPrefix)) continue;
      const rest = a.path.slice(artifactPrefix.length);
      const slash = rest.indexOf("/");
      if (slash >= 0) {
        const d = rest.slice(0, slash + 1);
        dirs.set(d, (dirs.get(d) || 0) + a.size);
      } else files.push(a);
    }
    const crumbs = [h("a", { href: "#", onclick: ev => { ev.preventDefault(); artifactPrefix = ""; renderArtifacts(all); } }, "outputs/")];
    let acc = "";
    for (const part of artifactPrefix.split("/").filter(Boolean)) {
      acc += part + "/";
      const p = acc;
      crumbs.push(h("a", { href: "#", onclick: ev => { ev.preventDefault(); artifactPrefix = p; renderArtifacts(all); } }, part + "/"));
    }
    const rows = [
      ...[...dirs].map(([d, size]) => ({ dir: d, size })),
      ...files.map(f => ({ file: f, size: f.size })),
    ];
    artifacts.replaceChildren(
      h("div", { class: "toolbar mono", "data-test": "artifact-path" }, crumbs),
      table([
        {
          title: "Path", render: r => r.dir
            ? h("a", { href: "#", "data-test": "artifact-dir", onclick: ev => { ev.preventDefault(); artifactPrefix += r.dir; renderArtifacts(all); } }, r.dir)
            : h("span", { class: "mono" }, r.file.path.slice(artifactPrefix.length)),
        },
        { title: "Size", render: r => fmtBytes(r.size) },
        {
          title: "", render: r => r.file
            ? h("a", {
              class: "btn btn-small", "data-test": "artifact-download", download: r.file.path.split("/").pop(),
              href: "/ui/api" + path + "/artifacts/" + r.file.path.split("/").map(encodeURIComponent).join("/"),
            }, "Download")
            : "",
        },
      ], rows, { rowAttrs: () => ({ "data-test": "artifact-row" }), empty: all.length ? "Empty folder." : "No artifacts (yet): a job's outputs are stored when it ends." }));
  }

  async function refreshChildren() {
    let list;
    try { list = await api("GET", path + "/children"); } catch (e) { showError(children, e); return; }
    children.replaceChildren(table([
      { title: "Job", render: j => h("a", { href: "#/jobs/" + encodeURIComponent(j.id), class: "mono" }, j.id) },
      { title: "Name", render: j => j.name || "" },
      { title: "Status", render: j => statusBadge(j.status) },
      { title: "Created", render: j => fmtTime(j.created_at) },
    ], list.jobs || [], { rowAttrs: j => ({ "data-test": "child-row", "data-job-id": j.id }), empty: "No child jobs." }));
  }

  // While the job is live, its record, metrics and children are read again
  // every 2 seconds; once it has ended, one last time, then never.
  let finalDone = false;
  const stop = poll(async () => {
    if (stopped) return;
    await refreshJob();
    if (!job) return;
    await Promise.all([refreshMetrics(), refreshChildren()]);
    if (TERMINAL.has(job.status)) {
      if (!finalDone) { finalDone = true; await refreshArtifacts(); }
      stopped = true;
      stop();
    } else if (!finalDone && artifacts.childElementCount === 0) {
      await refreshArtifacts();
    }
  }, 2000);

  return () => {
    stopped = true;
    log.close();
    for (const c of chartsByName.values()) c.destroy();
  };
});

// seriesByAttempt splits a metric's points by the attempt whose time
// window holds each point's timestamp.
export function seriesByAttempt(points, job) {
  const windows = (job && job.attempts || []).map(a => ({
    attempt: a.attempt, from: a.started_at ? Date.parse(a.started_at) : -Infinity, to: Date.parse(a.finished_at),
  }));
  const byAttempt = new Map();
  for (const p of points || []) {
    const t = Date.parse(p.timestamp);
    const w = windows.find(w => t >= w.from && t <= w.to);
    const a = w ? w.attempt : (job ? job.attempt : 1);
    if (!byAttempt.has(a)) byAttempt.set(a, []);
    byAttempt.get(a).push([p.step, p.value]);
  }
  const keys = [...byAttempt.keys()].sort((a, b) => a - b);
  return keys.map(a => ({ label: "attempt " + a, points: byAttempt.get(a).sort((x, y) => x[0] - y[0]) }));
}

function fmtBytes(n) {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + " " + u[i];
}

// logView is the live log: it streams GET logs?follow=true while the job
// runs, filters lines by a search box, and links the whole log for download.
function logView(path, id) {
  const pre = h("pre", { class: "log-view mono", "data-test": "log-view" });
  const follow = h("input", { type: "checkbox", checked: true, "data-test": "log-follow", id: "log-follow" });
  const search = h("input", { type: "search", placeholder: "search the log", "data-test": "log-search" });
  const count = h("span", { class: "muted", "data-test": "log-count" });
  const state = h("span", { class: "muted", "data-test": "log-state" });
  const el = h("div", null,
    h("div", { class: "toolbar" },
      h("label", { for: "log-follow" }, follow, " follow"),
      search, count, state,
      h("a", { class: "btn btn-small", href: "/ui/api" + path + "/logs", download: id + ".log", "data-test": "log-download" }, "Download")),
    pre);
  let controller = null, streaming = false, done = false, lines = 0, partial = "";

  const matches = (line) => {
    const q = search.value.trim().toLowerCase();
    return !q || line.toLowerCase().includes(q);
  };
  const applySearch = () => {
    let shown = 0;
    for (const div of pre.children) {
      const ok = matches(div.textContent);
      div.hidden = !ok;
      if (ok) shown++;
    }
    count.textContent = search.value.trim() ? `${shown} of ${lines} lines` : `${lines} lines`;
  };
  search.addEventListener("input", applySearch);
  follow.addEventListener("change", () => { if (follow.checked) pre.scrollTop = pre.scrollHeight; });

  const addLine = (text) => {
    // textContent only: a log line is never markup.
    const div = h("div", { class: "log-line" }, text);
    div.hidden = !matches(text);
    pre.appendChild(div);
    lines++;
    if (pre.childElementCount > MAX_LOG_LINES) pre.firstElementChild.remove();
  };

  async function stream(live) {
    streaming = true;
    controller = new AbortController();
    pre.replaceChildren();
    lines = 0; partial = "";
    state.textContent = live ? "live" : "";
    try {
      const resp = await apiFetch("GET", path + "/logs" + (live ? "?follow=true" : ""), null, { signal: controller.signal, accept: "text/plain" });
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        partial += dec.decode(value, { stream: true });
        const parts = partial.split("\n");
        partial = parts.pop();
        for (const p of parts) addLine(p);
        count.textContent = search.value.trim() ? count.textContent : `${lines} lines`;
        if (follow.checked) pre.scrollTop = pre.scrollHeight;
      }
      if (partial) addLine(partial);
      partial = "";
      applySearch();
      if (follow.checked) pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      if (e.name !== "AbortError") showError(state, e);
    }
    state.textContent = state.querySelector(".error") ? state.textContent : "";
    streaming = false;
  }

  return {
    el,
    // ensure streams the log once the job has one: live while it runs,
    // all of it once more when it has ended (so nothing is missed).
    ensure(job) {
      if (done || streaming || job.attempt < 1) return;
      const live = !TERMINAL.has(job.status);
      if (!live) done = true;
      stream(live);
    },
    close() { done = true; if (controller) controller.abort(); },
  };
}
