// #/workspace: the signed-in workspace. Anyone sees its quotas; an admin
// also manages its API tokens (a new one's secret is shown once) and its
// secrets (names only: a value is never read back), and reads the audit
// log. The gateway checks every call again; the page only hides what the
// session's scopes would be refused.
import { api, can, fieldErrors, fmtTime, h, register, session, showError, table } from "../core.js";
import { button, card, kv } from "./pagekit.js";

const SCOPES = ["read", "submit", "admin"];

function labelled(label, input) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input);
}

// confirmed asks before a change that cannot be undone.
function confirmed(question) {
  return window.confirm(question);
}

function quotasText(q) {
  q = q || {};
  const parts = [];
  if (q.max_running_jobs) parts.push(q.max_running_jobs + " running jobs");
  if (q.max_gpus) parts.push(q.max_gpus + " GPUs");
  if (q.requests_per_second) parts.push(q.requests_per_second + " requests/s");
  return parts.length ? parts.join(", ") : "none";
}

async function workspaceCard(ws) {
  const list = await api("GET", "/v1/workspaces");
  const w = (list.workspaces || []).find((x) => x.name === ws);
  if (!w) return card("Workspace", "workspace-summary", h("p", { class: "muted" }, ws));
  return card(
    "Workspace",
    "workspace-summary",
    kv([
      ["Name", h("span", { class: "mono", "data-test": "workspace-name" }, w.name)],
      ["Quotas", quotasText(w.quotas)],
      ["Images allowed", (w.image_allowlist || []).length ? w.image_allowlist.join(", ") : "any"],
      ["Host-process jobs", w.allow_host_process ? "allowed" : "not allowed"],
      // A workspace made before creation times were kept has none.
      ["Created", w.created_at && !w.created_at.startsWith("0001-") ? fmtTime(w.created_at) : ""],
    ]),
  );
}

function tokensCard(ws, refresh) {
  const path = "/v1/workspaces/" + encodeURIComponent(ws) + "/tokens";
  const body = h("div", { "data-test": "tokens" });
  const shown = h("div", { "data-test": "token-new" });
  const name = h("input", { name: "name", required: true, autocomplete: "off", "data-test": "token-name" });
  const boxes = SCOPES.map((s) => h("input", { type: "checkbox", name: "scopes", value: s, "data-test": "token-scope-" + s }));
  const form = h(
    "form",
    { class: "workspace-form", "data-test": "token-form" },
    labelled("Name", name),
    h("span", { class: "field-label" }, "Scopes (admin includes submit, submit includes read)"),
    h("div", { class: "checks" }, ...SCOPES.map((s, i) => h("label", { class: "check" }, boxes[i], s))),
    h("button", { type: "submit", class: "btn", "data-test": "token-create" }, "Create token"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    fieldErrors(form, null);
    shown.replaceChildren();
    const scopes = boxes.filter((b) => b.checked).map((b) => b.value);
    try {
      const t = await api("POST", path, { name: name.value.trim(), scopes });
      form.reset();
      // The secret is in the answer only: shown once, as text, never stored.
      shown.replaceChildren(h("div", { class: "card" },
        h("p", {}, "Token ", h("b", {}, t.name), " made. Copy its secret now: it is not shown again."),
        h("pre", { class: "mono pre", "data-test": "token-secret" }, t.token)));
      await refresh();
    } catch (err) {
      fieldErrors(form, err);
    }
  });
  async function load() {
    const list = await api("GET", path);
    const own = session().token_id;
    body.replaceChildren(table(
      [
        { title: "Name", render: (t) => t.name },
        { title: "ID", render: (t) => h("span", { class: "mono muted" }, t.id) },
        { title: "Scopes", render: (t) => (t.scopes || []).join(", ") },
        { title: "Created", render: (t) => fmtTime(t.created_at) },
        { title: "Last used", render: (t) => (t.last_used_at ? fmtTime(t.last_used_at) : "never") },
        { title: "Expires", render: (t) => (t.expires_at ? fmtTime(t.expires_at) : "never") },
        {
          title: "",
          render: (t) => t.id === own
            ? h("span", { class: "muted" }, "this session")
            : button("Revoke", "token-revoke", async () => {
              if (!confirmed(`Revoke token ${t.name}? Requests with it are refused from now on.`)) return;
              await api("DELETE", path + "/" + encodeURIComponent(t.id));
              await refresh();
            }, (err) => showError(body, err)),
        },
      ],
      list.tokens || [],
      { empty: "No token.", rowAttrs: (t) => ({ "data-test": "token-row", "data-name": t.name, "data-id": t.id }) },
    ));
  }
  return { node: card("API tokens", "workspace-tokens", body, shown, form), load };
}

function secretsCard(refresh) {
  const body = h("div", { "data-test": "secrets" });
  const name = h("input", { name: "name", required: true, autocomplete: "off", "data-test": "secret-name" });
  // A password field: the value is not echoed on the screen.
  const value = h("input", { name: "value", type: "password", required: true, autocomplete: "new-password", "data-test": "secret-value" });
  const form = h("form", { class: "workspace-form", "data-test": "secret-form" },
    labelled("Name", name), labelled("Value", value),
    h("button", { type: "submit", class: "btn", "data-test": "secret-put" }, "Set secret"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    fieldErrors(form, null);
    try {
      await api("POST", "/v1/secrets", { name: name.value.trim(), value: value.value });
      form.reset();
      await refresh();
    } catch (err) {
      fieldErrors(form, err);
    }
  });
  async function load() {
    const list = await api("GET", "/v1/secrets");
    body.replaceChildren(table(
      [
        { title: "Name", render: (s) => h("span", { class: "mono" }, s.name) },
        { title: "In a job spec", render: (s) => h("span", { class: "mono muted" }, `"secrets": {"ENV_VAR": "${s.name}"}`) },
        {
          title: "",
          render: (s) => button("Delete", "secret-delete", async () => {
            if (!confirmed(`Delete secret ${s.name}? Jobs that name it fail at their next start.`)) return;
            await api("DELETE", "/v1/secrets/" + encodeURIComponent(s.name));
            await refresh();
          }, (err) => showError(body, err)),
        },
      ],
      list.secrets || [],
      { empty: "No secret.", rowAttrs: (s) => ({ "data-test": "secret-row", "data-name": s.name }) },
    ));
  }
  return { node: card("Secrets", "workspace-secrets", h("p", { class: "muted" }, "Values are write-only: set one again to change it."), body, form), load };
}

function auditCard() {
  const body = h("div", { "data-test": "audit" });
  async function load() {
    const page = await api("GET", "/v1/audit?limit=50");
    body.replaceChildren(table(
      [
        { title: "Time", render: (e) => fmtTime(e.time) },
        { title: "Actor", render: (e) => e.actor },
        { title: "Action", render: (e) => h("span", { class: "mono" }, e.action) },
        { title: "Target", render: (e) => h("span", { class: "mono" }, e.target || "") },
      ],
      page.entries || [],
      { empty: "Nothing recorded yet.", rowAttrs: (e) => ({ "data-test": "audit-row", "data-action": e.action }) },
    ));
  }
  return { node: card("Audit log, newest first", "workspace-audit", body), load };
}

async function renderWorkspace(root) {
  const s = session();
  const ws = s.workspace;
  const top = h("div", { "data-test": "workspace" });
  root.replaceChildren(h("h1", {}, "Workspace ", h("span", { class: "mono" }, ws)), top);
  if (!can("admin")) {
    try {
      top.replaceChildren(await workspaceCard(ws),
        h("p", { class: "muted", "data-test": "workspace-not-admin" }, "Tokens, secrets and the audit log are for the workspace's admins."));
    } catch (err) {
      showError(top, err);
    }
    return;
  }
  const parts = [];
  const refresh = async () => {
    for (const p of parts) await p.load();
  };
  parts.push(tokensCard(ws, refresh), secretsCard(refresh), auditCard());
  try {
    top.replaceChildren(await workspaceCard(ws), ...parts.map((p) => p.node));
    await refresh();
  } catch (err) {
    showError(top, err);
  }
}

register("/workspace", (root) => void renderWorkspace(root));
