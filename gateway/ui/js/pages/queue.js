// #/queue: the jobs that wait (GET /v1/queue), in the order the scheduler
// considers them, each with why it waits.
import { api, fmtTime, h, poll, register, session, showError, table } from "../core.js";
import { changeGate, isMissingRoute, jobLink } from "./pagekit.js";

function gpusText(q) {
  if (!q.gpus) return "—";
  return q.gpus + (q.gpu_model ? " × " + q.gpu_model : "");
}

function render(root) {
  const summary = h("p", { class: "muted", "data-test": "queue-total" });
  const body = h("div", { "data-test": "queue" });
  root.replaceChildren(h("h1", {}, "Queue"), summary, body);
  const everyWorkspace = !!session().system;
  const changed = changeGate();

  async function refresh() {
    let q;
    try {
      q = await api("GET", "/v1/queue");
    } catch (err) {
      if (isMissingRoute(err)) {
        summary.replaceChildren();
        body.replaceChildren(h("p", { class: "muted", "data-test": "queue-unavailable" }, "This gateway does not serve the queue view (GET /v1/queue) yet."));
        stop();
        return;
      }
      changed(null); // show the queue again once the error is gone
      showError(body, err);
      return;
    }
    if (!changed(q)) return;
    const pending = q.pending || [];
    const waits = q.total === 1 ? "1 job waits" : `${q.total} jobs wait`;
    summary.textContent = q.total === 0 ? "No job waits." : pending.length < q.total ? `${waits}; the first ${pending.length} are shown.` : waits + ".";
    if (!pending.length) {
      body.replaceChildren();
      return;
    }
    const columns = [
      { title: "#", render: (r) => h("span", { "data-test": "queue-position" }, String(r.position)) },
      { title: "Job", render: (r) => jobLink(r.id) },
      { title: "Name", render: (r) => r.name || "" },
      ...(everyWorkspace ? [{ title: "Workspace", render: (r) => r.workspace }] : []),
      { title: "Experiment", render: (r) => r.experiment || "" },
      { title: "Priority", render: (r) => h("span", { class: "badge priority-" + r.priority }, r.priority) },
      { title: "GPUs", render: gpusText },
      { title: "Waiting since", render: (r) => fmtTime(r.created_at) },
      {
        title: "Why it waits",
        render: (r) =>
          h("span", { "data-test": "queue-reason", "data-reason-code": r.reason_code || "" }, h("span", { class: "badge reason" }, r.reason_code || "?"), " ", r.reason || ""),
      },
    ];
    const t = table(columns, pending, { rowAttrs: (r) => ({ "data-test": "queue-row", "data-job-id": r.id }) });
    body.replaceChildren(t);
  }

  // poll runs refresh at once; stop is set before its first answer comes.
  const stop = poll(refresh, 2000);
  return stop;
}

register("/queue", render);
