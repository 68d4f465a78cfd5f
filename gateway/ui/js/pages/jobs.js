// #/jobs: the job list with filters, refreshed while shown (portal-core).
import { api, h, register, poll, table, fmtTime, fmtDuration, statusBadge, showError } from "../core.js";

const STATUSES = ["", "queued", "running", "succeeded", "failed", "canceled"];

export function duration(j) {
  if (!j.started_at) return "";
  const end = j.finished_at ? new Date(j.finished_at) : new Date();
  return fmtDuration((end - new Date(j.started_at)) / 1000);
}

register("/jobs", (root, _params, query) => {
  // The filters live in the address (#/jobs?status=running), so a view can
  // be shared and survives a reload. status and experiment are the API's;
  // workspace and text filter what it answers (a token sees its workspace).
  const f = {
    status: query.get("status") || "", experiment: query.get("experiment") || "",
    workspace: query.get("workspace") || "", q: query.get("q") || "",
  };
  const err = h("div");
  const body = h("div", { "data-test": "jobs-table" }, h("p", { class: "muted" }, "Loading…"));
  const more = h("div");
  let limit = 100;

  const status = h("select", { name: "status", "data-test": "filter-status" },
    STATUSES.map(s => h("option", { value: s, selected: s === f.status }, s || "any status")));
  const experiment = h("input", { name: "experiment", placeholder: "experiment", value: f.experiment, "data-test": "filter-experiment" });
  const workspace = h("input", { name: "workspace", placeholder: "workspace", value: f.workspace, "data-test": "filter-workspace" });
  const text = h("input", { name: "q", type: "search", placeholder: "search name or id", value: f.q, "data-test": "filter-text" });

  const apply = () => {
    const p = new URLSearchParams();
    if (status.value) p.set("status", status.value);
    if (experiment.value.trim()) p.set("experiment", experiment.value.trim());
    if (workspace.value.trim()) p.set("workspace", workspace.value.trim());
    if (text.value.trim()) p.set("q", text.value.trim());
    const qs = p.toString();
    // Replace, not push: typing in a filter should not fill the history.
    history.replaceState(null, "", "#/jobs" + (qs ? "?" + qs : ""));
    Object.assign(f, { status: status.value, experiment: experiment.value.trim(), workspace: workspace.value.trim(), q: text.value.trim() });
    refresh();
  };
  status.addEventListener("change", apply);
  for (const el of [experiment, workspace, text]) el.addEventListener("input", debounce(apply, 250));

  root.replaceChildren(
    h("h1", null, "Jobs"),
    h("div", { class: "toolbar" }, status, experiment, workspace, text,
      h("a", { class: "btn", href: "#/submit", "data-test": "new-job" }, "Submit a job")),
    err, body, more);

  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const p = new URLSearchParams({ limit: String(limit) });
    if (f.status) p.set("status", f.status);
    if (f.experiment) p.set("experiment", f.experiment);
    let list;
    try {
      list = await api("GET", "/v1/jobs?" + p);
    } catch (e) {
      if (mine === seq) showError(err, e);
      return;
    }
    if (mine !== seq) return; // a newer refresh is on its way
    err.replaceChildren();
    const needle = f.q.toLowerCase();
    const rows = (list.jobs || []).filter(j =>
      (!f.workspace || j.workspace === f.workspace) &&
      (!needle || (j.name || "").toLowerCase().includes(needle) || j.id.toLowerCase().includes(needle)));
    body.replaceChildren(table([
      { title: "Job", render: j => h("a", { href: "#/jobs/" + encodeURIComponent(j.id), class: "mono", "data-test": "job-link" }, j.id) },
      { title: "Name", render: j => h("span", { "data-test": "job-name" }, j.name || "") },
      { title: "Status", render: j => statusBadge(j.status) },
      { title: "Experiment", render: j => j.experiment || "" },
      { title: "Workspace", render: j => j.workspace },
      { title: "Attempt", render: j => String(j.attempt || 0) },
      { title: "Created", render: j => fmtTime(j.created_at) },
      { title: "Duration", render: j => duration(j) },
    ], rows, {
      rowAttrs: j => ({ "data-test": "job-row", "data-job-id": j.id, "data-status": j.status }),
      empty: "No jobs match.",
    }));
    more.replaceChildren(list.next_cursor
      ? h("button", { class: "btn", type: "button", "data-test": "more-jobs", onclick: () => { limit = Math.min(500, limit + 100); refresh(); } }, "Show more")
      : "");
  }

  // Live status: the list is read again every 2 seconds while shown.
  poll(refresh, 2000);
});

function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}

