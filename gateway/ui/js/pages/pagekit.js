// Small pieces the operations pages (submit, queue, workers, models,
// deployments, schedules, triggers; owner portal-pages) share and that
// core.js does not offer. Everything builds nodes with h(): no HTML strings.
import { ApiError, h } from "../core.js";

// jobLink is a link to a job's page, its ID in monospace.
export function jobLink(id) {
  if (!id) return h("span", { class: "muted" }, "—");
  return h("a", { href: "#/jobs/" + encodeURIComponent(id), class: "mono", "data-test": "job-link" }, id);
}

// ago is how long ago iso was, for heartbeats: "4s ago", "3m ago".
export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

// mib writes a size given in MiB: "512 MiB", "80.0 GiB".
export function mib(n) {
  if (n == null) return "—";
  return n >= 1024 ? (n / 1024).toFixed(1) + " GiB" : n + " MiB";
}

// bytes writes a size given in bytes.
export function bytes(n) {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

// kv is a two-column list of label and value (a Node or a string); rows
// whose value is null or "" are left out.
export function kv(pairs, test) {
  const dl = h("dl", { class: "kv", "data-test": test || "details" });
  for (const [label, value] of pairs) {
    if (value == null || value === "") continue;
    dl.append(h("dt", {}, label), h("dd", {}, value));
  }
  return dl;
}

// card is a titled section.
export function card(title, test, ...children) {
  return h("section", { class: "card", "data-test": test }, h("h2", {}, title), ...children);
}

// pairsText writes a map as "k=v, k=v" in key order ("" for none).
export function pairsText(m) {
  if (!m) return "";
  return Object.keys(m)
    .sort()
    .map((k) => k + "=" + m[k])
    .join(", ");
}

// isMissingRoute tells a gateway without the route (404 "no such route")
// apart from a missing thing, so a page can say the view is not there yet.
export function isMissingRoute(err) {
  return err instanceof ApiError && err.status === 404 && /route/i.test(err.message || "");
}

// makeError is an ApiError made in the page (a form line that does not
// parse), for core's fieldErrors and showError.
export function makeError(field, message) {
  return new ApiError(0, "", message, field);
}

// withField is err about field instead.
export function withField(err, field) {
  return new ApiError(err.status, err.code, err.message, field);
}

// button is a small button that runs action, disabled while it runs; the
// error, if any, goes to onError.
export function button(label, test, action, onError, cls = "btn btn-small") {
  const b = h("button", { type: "button", class: cls, "data-test": test }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } catch (err) {
      onError(err);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// pre is a block of monospace text (JSON, an answer).
export function pre(text, test) {
  return h("pre", { class: "mono pre", "data-test": test }, text);
}

// changeGate makes a gate for a polling page: gate(data) is false while data
// reads the same as last time, so the page is left as it is (a button
// about to be clicked, a selection) when nothing moved.
export function changeGate() {
  let last = null;
  return (data) => {
    const now = JSON.stringify(data);
    if (now === last) return false;
    last = now;
    return true;
  };
}
