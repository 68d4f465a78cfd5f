// #/triggers and #/triggers/:name: webhook triggers, the job each starts,
// and the deliveries it received with what came of them (accepted,
// ignored, duplicate, rejected).
import { api, fmtTime, h, poll, register, showError, table } from "../core.js";
import { card, changeGate, jobLink, kv } from "./pagekit.js";

function triggerLink(name) {
  return h("a", { href: "#/triggers/" + encodeURIComponent(name), "data-test": "trigger-link" }, name);
}

function filterText(f) {
  const parts = [];
  if (f && f.event) parts.push("event " + f.event);
  if (f && f.ref) parts.push("ref " + f.ref);
  return parts.length ? parts.join(", ") : "every delivery";
}

function renderList(root) {
  const body = h("div", { "data-test": "triggers" });
  root.replaceChildren(h("h1", {}, "Triggers"), body);
  const changed = changeGate();
  async function refresh() {
    try {
      const list = await api("GET", "/v1/triggers");
      if (!changed(list)) return;
      const all = list.triggers || [];
      if (!all.length) {
        body.replaceChildren(h("p", { class: "muted" }, "No trigger."));
        return;
      }
      const t = table(
        [
          { title: "Trigger", render: (tr) => triggerLink(tr.name) },
          { title: "Provider", render: (tr) => tr.provider },
          { title: "Acts on", render: (tr) => filterText(tr.filter) },
          { title: "Hook", render: (tr) => h("span", { class: "mono" }, tr.hook_url) },
          { title: "Created", render: (tr) => fmtTime(tr.created_at) },
        ],
        all,
        { rowAttrs: (tr) => ({ "data-test": "trigger-row", "data-name": tr.name }) },
      );
      body.replaceChildren(t);
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(body, err);
    }
  }
  return poll(refresh, 5000);
}

function deliveriesTable(ds) {
  if (!ds.length) return h("p", { class: "muted" }, "No delivery yet.");
  return table(
    [
      { title: "Received", render: (d) => fmtTime(d.received_at) },
      { title: "Event", render: (d) => d.event || "" },
      { title: "Outcome", render: (d) => h("span", { class: "badge outcome-" + d.outcome, "data-test": "delivery-outcome" }, d.outcome) },
      { title: "Reason", render: (d) => d.reason || "" },
      { title: "Job", render: (d) => jobLink(d.job_id) },
      { title: "Delivery", render: (d) => h("span", { class: "mono muted" }, d.id) },
    ],
    ds,
    { rowAttrs: () => ({ "data-test": "delivery-row" }) },
  );
}

function renderTrigger(root, params) {
  const name = params.name;
  const path = "/v1/triggers/" + encodeURIComponent(name);
  const body = h("div", { "data-test": "trigger" });
  root.replaceChildren(h("p", {}, h("a", { href: "#/triggers" }, "← Triggers")), h("h1", {}, "Trigger ", h("span", { class: "mono" }, name)), body);
  const changed = changeGate();
  async function refresh() {
    try {
      const [tr, dl] = await Promise.all([api("GET", path), api("GET", path + "/deliveries")]);
      if (!changed([tr, dl])) return;
      const job = tr.job || {};
      body.replaceChildren(
        card(
          "Trigger",
          "trigger-summary",
          kv([
            ["Provider", tr.provider],
            ["Hook URL", h("span", { class: "mono" }, location.origin + tr.hook_url)],
            ["Acts on", filterText(tr.filter)],
            ["Image", h("span", { class: "mono" }, job.image || "")],
            ["Command", h("span", { class: "mono" }, (job.command || []).join(" "))],
            ["Created", fmtTime(tr.created_at)],
            ["Changed", tr.updated_at ? fmtTime(tr.updated_at) : ""],
            ["Old secret accepted until", tr.previous_secret_until ? fmtTime(tr.previous_secret_until) : ""],
          ]),
        ),
        card("Deliveries", "trigger-deliveries", deliveriesTable((dl && dl.deliveries) || [])),
      );
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(body, err);
    }
  }
  return poll(refresh, 5000);
}

register("/triggers", renderList);
register("/triggers/:name", renderTrigger);
