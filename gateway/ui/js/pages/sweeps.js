// #/sweeps and #/sweeps/:id: hyperparameter sweeps, newest first; a sweep's
// best trial so far and its trials best objective first, each linked to
// its job, with why a stopped one stopped; cancel for a token that may
// submit.
import { api, can, fmtTime, h, poll, register, showError, statusBadge, table } from "../core.js";
import { button, card, changeGate, jobLink, kv, pairsText } from "./pagekit.js";

function sweepLink(id) {
  return h("a", { href: "#/sweeps/" + encodeURIComponent(id), class: "mono", "data-test": "sweep-link" }, id);
}

function num(v) {
  return v == null ? "—" : String(Number(v.toPrecision(6)));
}

function objectiveText(o) {
  return o ? o.goal + " " + o.metric : "";
}

function renderList(root) {
  const body = h("div", { "data-test": "sweeps" });
  root.replaceChildren(h("h1", {}, "Sweeps"), body);
  const changed = changeGate();
  async function refresh() {
    try {
      const list = await api("GET", "/v1/sweeps?limit=100");
      if (!changed(list)) return;
      const columns = [
        { title: "Sweep", render: (s) => sweepLink(s.id) },
        { title: "Name", render: (s) => s.name || "" },
        { title: "Status", render: (s) => statusBadge(s.status) },
        { title: "Sampling", render: (s) => s.sampling.type },
        { title: "Objective", render: (s) => objectiveText(s.objective) },
        { title: "Trials", render: (s) => h("span", { "data-test": "sweep-trial-count" }, s.trials + " / " + s.max_total_trials) },
        { title: "Created", render: (s) => fmtTime(s.created_at) },
      ];
      body.replaceChildren(table(columns, list.sweeps || [], {
        empty: "No sweep yet: POST /v1/sweeps or jobgate sweep submit -f sweep.yaml.",
        rowAttrs: (s) => ({ "data-test": "sweep-row", "data-id": s.id }),
      }));
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(body, err);
    }
  }
  return poll(refresh, 5000);
}

function trialsTable(trials, metric) {
  return table(
    [
      { title: "Trial", render: (t) => String(t.index) },
      { title: "Job", render: (t) => jobLink(t.job_id) },
      { title: "State", render: (t) => statusBadge(t.state) },
      { title: "Best " + metric, render: (t) => num(t.best_metric) },
      { title: "Last", render: (t) => num(t.metric) },
      { title: "Step", render: (t) => String(t.step || 0) },
      { title: "Params", render: (t) => h("span", { class: "mono" }, pairsText(t.params)) },
      { title: "Stopped because", render: (t) => (t.reason && t.state !== "succeeded" ? h("span", { class: "badge reason" }, t.reason.code + (t.reason.detail ? ": " + t.reason.detail : "")) : "") },
    ],
    trials,
    { empty: "No trial made yet.", rowAttrs: (t) => ({ "data-test": "sweep-trial-row", "data-index": String(t.index), "data-state": t.state }) },
  );
}

function renderSweep(root, params) {
  const path = "/v1/sweeps/" + encodeURIComponent(params.id);
  const errorBox = h("div", { "data-test": "sweep-error" });
  const body = h("div", { "data-test": "sweep" });
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/sweeps" }, "← Sweeps")),
    h("h1", {}, "Sweep ", h("span", { class: "mono" }, params.id)),
    errorBox,
    body,
  );
  const changed = changeGate();
  async function refresh() {
    try {
      const [s, trials] = await Promise.all([api("GET", path), api("GET", path + "/trials")]);
      if (!changed([s, trials])) return;
      const spec = s.spec || {};
      const limits = spec.limits || {};
      const et = spec.early_termination;
      const cancel = can("submit") && s.status === "running"
        ? button("Cancel sweep", "sweep-cancel", async () => {
          errorBox.replaceChildren();
          await api("POST", path + "/cancel");
          await refresh();
        }, (err) => showError(errorBox, err))
        : "";
      const best = s.best;
      body.replaceChildren(
        card(
          "Sweep",
          "sweep-summary",
          h("div", { class: "toolbar" }, h("span", { "data-test": "sweep-status", "data-status": s.status }, statusBadge(s.status)), cancel),
          kv([
            ["Name", spec.name],
            ["Experiment", spec.experiment],
            ["Objective", objectiveText(spec.objective)],
            ["Sampling", spec.sampling && spec.sampling.type === "grid" ? "grid" : (spec.sampling && spec.sampling.type) + ", seed " + s.seed],
            ["Early termination", et ? et.type : "none"],
            ["Trials", (s.trials || []).length + " made of " + (limits.max_total_trials || "—") + ", " + (limits.max_concurrent_trials || 1) + " at once"],
            ["Timeout", limits.timeout_seconds ? limits.timeout_seconds + " s" : ""],
            ["Created", fmtTime(s.created_at)],
            ["Ended", s.ended_at ? fmtTime(s.ended_at) : ""],
          ]),
        ),
        card(
          "Best trial so far",
          "sweep-best",
          best
            ? kv([
              ["Trial", String(best.index)],
              ["Job", jobLink(best.job_id)],
              [spec.objective ? spec.objective.metric : "objective", h("span", { "data-test": "sweep-best-metric" }, num(best.best_metric))],
              ["Params", h("span", { class: "mono", "data-test": "sweep-best-params" }, pairsText(best.params))],
            ], "sweep-best-details")
            : h("p", { class: "muted" }, "No trial has reported the objective yet."),
        ),
        card("Trials, best objective first", "sweep-trials", trialsTable(trials.trials || [], spec.objective ? spec.objective.metric : "")),
      );
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(body, err);
    }
  }
  return poll(refresh, 3000);
}

register("/sweeps", renderList);
register("/sweeps/:id", renderSweep);
