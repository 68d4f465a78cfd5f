// #/models and #/models/:name: the model registry. Versions with their
// lineage (the job and path each was registered from, its experiment,
// params and final metrics) and the aliases naming them; for a token that
// may submit, deleting a version or the whole model (the gateway refuses
// one a deployment or batch uses, and the page shows why).
import { api, can, fmtTime, h, navigate, register, showError, table } from "../core.js";
import { button, bytes, card, jobLink, kv, pairsText } from "./pagekit.js";

function modelLink(name) {
  return h("a", { href: "#/models/" + encodeURIComponent(name), "data-test": "model-link" }, name);
}

function aliasChips(aliases) {
  const names = Object.keys(aliases || {}).sort();
  if (!names.length) return h("span", { class: "muted" }, "—");
  return h("span", {}, ...names.map((a) => h("span", { class: "chip", "data-test": "model-alias" }, `${a} → v${aliases[a]}`)));
}

async function renderList(root) {
  const body = h("div", { "data-test": "models" });
  root.replaceChildren(h("h1", {}, "Models"), body);
  try {
    const list = await api("GET", "/v1/models");
    const models = list.models || [];
    if (!models.length) {
      body.replaceChildren(h("p", { class: "muted" }, "No model is registered. Register a version from a job's outputs: jobgate models register NAME --job ID --path PATH."));
      return;
    }
    const t = table(
      [
        { title: "Model", render: (m) => modelLink(m.name) },
        { title: "Latest", render: (m) => (m.latest_version ? "v" + m.latest_version : "—") },
        { title: "Versions", render: (m) => String((m.versions || []).length) },
        { title: "Aliases", render: (m) => aliasChips(m.aliases) },
        { title: "Created", render: (m) => fmtTime(m.created_at) },
      ],
      models,
      { rowAttrs: (m) => ({ "data-test": "model-row", "data-name": m.name }) },
    );
    body.replaceChildren(t);
  } catch (err) {
    showError(body, err);
  }
}

function versionCard(v, remove) {
  const c = card(
    "Version " + v.version,
    "model-version",
    remove ? h("div", { class: "toolbar" }, remove) : "",
    (v.aliases || []).length ? h("p", {}, ...v.aliases.map((a) => h("span", { class: "chip", "data-test": "model-alias" }, a))) : "",
    kv([
      ["Source job", h("span", { "data-test": "model-source-job" }, jobLink(v.source_job))],
      ["Source path", h("span", { class: "mono" }, v.source_path)],
      ["Experiment", v.experiment ? h("a", { href: "#/experiments/" + encodeURIComponent(v.experiment) }, v.experiment) : ""],
      ["Kind", v.kind],
      ["Size", bytes(v.size)],
      ["SHA-256", h("span", { class: "mono", title: v.sha256 }, (v.sha256 || "").slice(0, 16) + "…")],
      ["Params", pairsText(v.params)],
      ["Metrics", pairsText(v.metrics)],
      ["Registered", fmtTime(v.created_at) + (v.created_by ? " by " + v.created_by : "")],
    ]),
    (v.files || []).length
      ? h(
          "details",
          {},
          h("summary", {}, `${v.files.length} files`),
          table(
            [
              { title: "Path", render: (f) => h("span", { class: "mono" }, f.path) },
              { title: "Size", render: (f) => bytes(f.size) },
            ],
            v.files,
          ),
        )
      : "",
  );
  c.dataset.version = String(v.version);
  return c;
}

async function renderModel(root, params) {
  const name = params.name;
  const path = "/v1/models/" + encodeURIComponent(name);
  const body = h("div", { "data-test": "model" });
  const errorBox = h("div", { "data-test": "model-error" });
  root.replaceChildren(h("p", {}, h("a", { href: "#/models" }, "← Models")), h("h1", {}, "Model ", h("span", { class: "mono" }, name)), errorBox, body);
  const onError = (err) => showError(errorBox, err);
  // Each delete asks first: a deleted version's number is never given out again.
  const removeVersion = (v) => can("submit")
    ? button("Delete version " + v.version, "model-version-delete", async () => {
      errorBox.replaceChildren();
      if (!window.confirm(`Delete ${name}:${v.version}, its files and the aliases naming it?`)) return;
      await api("DELETE", path + "/versions/" + v.version);
      await renderModel(root, params);
    }, onError)
    : "";
  const removeModel = can("submit")
    ? button("Delete model", "model-delete", async () => {
      errorBox.replaceChildren();
      if (!window.confirm(`Delete model ${name} with every version?`)) return;
      await api("DELETE", path);
      navigate("#/models");
    }, onError)
    : "";
  try {
    const m = await api("GET", path);
    const versions = (m.versions || []).slice().reverse(); // newest first
    body.replaceChildren(
      h("div", { class: "toolbar" }, removeModel),
      kv([
        ["Latest version", m.latest_version ? "v" + m.latest_version : "none (every version was deleted)"],
        ["Aliases", aliasChips(m.aliases)],
        ["Created", fmtTime(m.created_at)],
      ]),
      ...(versions.length ? versions.map((v) => versionCard(v, removeVersion(v))) : [h("p", { class: "muted" }, "No versions.")]),
    );
  } catch (err) {
    showError(body, err);
  }
}

// The renders run async; register wants no promise back (only a cleanup).
register("/models", (root) => void renderList(root));
register("/models/:name", (root, params) => void renderModel(root, params));
