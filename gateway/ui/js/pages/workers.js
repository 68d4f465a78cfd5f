// #/workers: the registered workers (GET /v1/workers): their state and
// heartbeats, slots, why one is out of service, and each GPU with its
// model, memory, utilization and the job that holds it.
import { api, fmtTime, h, poll, register, showError, table } from "../core.js";
import { ago, card, jobLink, kv, mib } from "./pagekit.js";

function meter(pct, test) {
  if (pct == null) return h("span", { class: "muted" }, "—");
  const p = Math.max(0, Math.min(100, pct));
  const bar = h("span", { class: "meter-bar" });
  bar.style.width = p + "%";
  return h("span", { class: "meter", "data-test": test, title: p + "%" }, h("span", { class: "meter-track" }, bar), " ", p + "%");
}

function gpuHolder(g) {
  if (g.job_id) return jobLink(g.job_id);
  if (g.in_use) return h("span", { class: "muted" }, "in use (another workspace)");
  return h("span", { class: "muted" }, "free");
}

function gpuTable(w) {
  const columns = [
    { title: "GPU", render: (g) => String(g.index) },
    { title: "Model", render: (g) => h("span", {}, g.model, g.simulated ? h("span", { class: "badge sim" }, "simulated") : "") },
    {
      title: "Memory",
      render: (g) => (g.memory_used_mb != null ? mib(g.memory_used_mb) + " / " + mib(g.memory_mb) : mib(g.memory_mb)),
    },
    { title: "Utilization", render: (g) => meter(g.utilization_pct, "gpu-utilization") },
    { title: "Held by", render: (g) => h("span", { "data-test": "gpu-holder" }, gpuHolder(g)) },
    { title: "UUID", render: (g) => h("span", { class: "mono muted" }, g.uuid) },
  ];
  return table(columns, w.gpus, { rowAttrs: (g) => ({ "data-test": "gpu-row", "data-index": g.index }) });
}

function workerCard(w) {
  const jobs = w.jobs || [];
  const used = jobs.length;
  const stateBadge = h("span", { class: "badge state-" + w.state, "data-test": "worker-state" }, w.state);
  const c = card(
    w.id,
    "worker-card",
    h("div", { class: "toolbar" }, stateBadge, w.status !== w.state ? h("span", { class: "muted" }, "says: " + w.status) : ""),
    w.problem ? h("p", { class: "error", "data-test": "worker-problem" }, "Out of service: " + w.problem) : "",
    kv([
      ["Host", w.hostname],
      ["Executor", w.executor],
      ["Slots", h("span", { "data-test": "worker-slots" }, `${used} of ${w.slots} used`)],
      [
        "Last heartbeat",
        h("span", { "data-test": "worker-heartbeat", title: fmtTime(w.last_heartbeat) }, ago(w.last_heartbeat)),
      ],
      ["Started", fmtTime(w.started_at)],
      ["Host processes", w.allow_host_process ? "allowed" : "not allowed"],
      ["Mounts", (w.mounts || []).join(", ")],
    ]),
    jobs.length ? h("div", { class: "worker-jobs", "data-test": "worker-jobs" }, h("h3", {}, "Jobs"), ...jobs.map((id) => h("span", { class: "chip" }, jobLink(id)))) : "",
    (w.gpus || []).length ? h("div", {}, h("h3", {}, "GPUs"), gpuTable(w)) : h("p", { class: "muted" }, "No GPUs."),
  );
  c.dataset.workerId = w.id;
  return c;
}

function render(root) {
  const body = h("div", { class: "workers", "data-test": "workers" });
  root.replaceChildren(h("h1", {}, "Workers"), body);
  async function refresh() {
    try {
      const list = await api("GET", "/v1/workers");
      const workers = list.workers || [];
      if (!workers.length) body.replaceChildren(h("p", { class: "muted" }, "No worker is registered."));
      else body.replaceChildren(...workers.map(workerCard));
    } catch (err) {
      showError(body, err);
    }
  }
  return poll(refresh, 3000);
}

register("/workers", render);
