// #/schedules and #/schedules/:name: cron schedules with their next fire
// times and history; pause, resume and run now for a token that may submit.
import { api, can, fmtTime, h, poll, register, showError, table } from "../core.js";
import { button, card, changeGate, jobLink, kv } from "./pagekit.js";

function scheduleLink(name) {
  return h("a", { href: "#/schedules/" + encodeURIComponent(name), "data-test": "schedule-link" }, name);
}

function pausedBadge(s) {
  return s.paused
    ? h("span", { class: "badge paused", "data-test": "schedule-state" }, "paused")
    : h("span", { class: "badge active", "data-test": "schedule-state" }, "active");
}

// actions are the buttons that change a schedule; none without the submit
// scope, which the gateway would refuse anyway.
function actions(s, onChanged, errorBox) {
  if (!can("submit")) return "";
  const path = "/v1/schedules/" + encodeURIComponent(s.name);
  const fail = (err) => showError(errorBox, err);
  const act = (verb) => async () => {
    errorBox.replaceChildren();
    await api("POST", path + "/" + verb);
    await onChanged();
  };
  return h(
    "span",
    { class: "toolbar" },
    s.paused ? button("Resume", "schedule-resume", act("resume"), fail) : button("Pause", "schedule-pause", act("pause"), fail),
    button("Run now", "schedule-run", act("run"), fail),
  );
}

function renderList(root) {
  const errorBox = h("div", { "data-test": "schedule-error" });
  const body = h("div", { "data-test": "schedules" });
  root.replaceChildren(h("h1", {}, "Schedules"), errorBox, body);
  const changed = changeGate();
  async function refresh() {
    try {
      const list = await api("GET", "/v1/schedules");
      if (!changed(list)) return;
      const all = list.schedules || [];
      if (!all.length) {
        body.replaceChildren(h("p", { class: "muted" }, "No schedule."));
        return;
      }
      const columns = [
        { title: "Schedule", render: (s) => scheduleLink(s.name) },
        { title: "Cron", render: (s) => h("span", { class: "mono" }, s.cron + (s.timezone ? " (" + s.timezone + ")" : "")) },
        { title: "State", render: pausedBadge },
        { title: "Next", render: (s) => h("span", { "data-test": "schedule-next" }, (s.next || []).length ? fmtTime(s.next[0]) : "—") },
        { title: "Last fired", render: (s) => (s.last_fired_at ? fmtTime(s.last_fired_at) : "never") },
        { title: "Last job", render: (s) => jobLink(s.last_job_id) },
      ];
      if (can("submit")) columns.push({ title: "", render: (s) => actions(s, refresh, errorBox) });
      const t = table(columns, all, { rowAttrs: (s) => ({ "data-test": "schedule-row", "data-name": s.name }) });
      body.replaceChildren(t);
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(body, err);
    }
  }
  return poll(refresh, 5000);
}

function historyTable(runs) {
  if (!runs.length) return h("p", { class: "muted" }, "It has not fired yet.");
  return table(
    [
      { title: "Tick", render: (r) => fmtTime(r.scheduled_at) + (r.manual ? " (by hand)" : "") },
      { title: "Fired", render: (r) => (r.fired_at ? fmtTime(r.fired_at) : "—") },
      { title: "Job", render: (r) => jobLink(r.job_id) },
      { title: "Skipped because", render: (r) => r.skipped_reason || "" },
    ],
    runs,
    { rowAttrs: () => ({ "data-test": "schedule-run-row" }) },
  );
}

function renderSchedule(root, params) {
  const name = params.name;
  const path = "/v1/schedules/" + encodeURIComponent(name);
  const errorBox = h("div", { "data-test": "schedule-error" });
  const body = h("div", { "data-test": "schedule" });
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/schedules" }, "← Schedules")),
    h("h1", {}, "Schedule ", h("span", { class: "mono" }, name)),
    errorBox,
    body,
  );
  const changed = changeGate();
  async function refresh() {
    try {
      const [s, hist] = await Promise.all([api("GET", path), api("GET", path + "/history")]);
      if (!changed([s, hist])) return;
      const next = s.next || [];
      body.replaceChildren(
        card(
          "Schedule",
          "schedule-summary",
          h("div", { class: "toolbar" }, pausedBadge(s), actions(s, refresh, errorBox)),
          kv([
            ["Cron", h("span", { class: "mono" }, s.cron)],
            ["Time zone", s.timezone],
            ["Concurrency", s.concurrency_policy],
            ["Starting deadline", s.starting_deadline_seconds ? s.starting_deadline_seconds + " s" : ""],
            ["Image", h("span", { class: "mono" }, (s.job && s.job.image) || "")],
            ["Command", h("span", { class: "mono" }, ((s.job && s.job.command) || []).join(" "))],
            ["Last tick", s.last_scheduled_at ? fmtTime(s.last_scheduled_at) : "none"],
            ["Created", fmtTime(s.created_at) + (s.created_by ? " by " + s.created_by : "")],
          ]),
        ),
        card(
          "Next fire times",
          "schedule-next-times",
          next.length ? h("ol", {}, ...next.map((t) => h("li", { "data-test": "schedule-next" }, fmtTime(t)))) : h("p", { class: "muted" }, s.paused ? "None while paused." : "None."),
        ),
        card("History", "schedule-history", historyTable((hist && hist.history) || [])),
      );
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(body, err);
    }
  }
  return poll(refresh, 5000);
}

register("/schedules", renderList);
register("/schedules/:name", renderSchedule);
