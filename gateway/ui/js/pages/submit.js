// #/submit: a job from a form or from a YAML spec (what `jobgate submit -f`
// reads), POSTed to /v1/jobs. The spec's errors are shown where they are:
// an API error at the input (or YAML line) of its field, a YAML syntax
// error with its line.
import { api, can, fieldErrors, h, poll, register, showError, statusBadge } from "../core.js";
import * as jsyaml from "/ui/vendor/js-yaml.mjs";
import { jobLink, makeError, withField } from "./pagekit.js";

const exampleYAML = `# A job spec, as \`jobgate submit -f\` reads it.
name: hello
image: localhost/jobgate-examples:latest
command: ["/bin/toolbox", "echo", "hello from the portal"]
resources:
  cpus: 1
  memory_mb: 256
timeout_seconds: 600
`;

// The form's inputs, named after the spec's fields so that an API error
// about a field lands at its input.
const textFields = [
  { name: "name", label: "Name", placeholder: "train-resnet" },
  { name: "experiment", label: "Experiment", placeholder: "resnet" },
  { name: "image", label: "Image", placeholder: "localhost/jobgate-examples:latest" },
];
const numberFields = [
  { name: "resources.cpus", label: "CPUs", step: "0.1" },
  { name: "resources.memory_mb", label: "Memory (MiB)", step: "1" },
  { name: "resources.gpus", label: "GPUs", step: "1" },
  { name: "resources.gpu_memory_mb", label: "GPU memory (MiB)", step: "1" },
  { name: "timeout_seconds", label: "Timeout (s)", step: "1" },
  { name: "max_retries", label: "Retries", step: "1" },
];
const formFields = [
  ...textFields.map((f) => f.name),
  "command",
  "env",
  "tags",
  "resources.gpu_model",
  ...numberFields.map((f) => f.name),
  "priority",
  "mode",
];

// specFields are the job spec's own fields (api.JobSpec), which the
// gateway's messages start with when they are about one.
const specFields = new Set([
  "kind", "name", "experiment", "image", "command", "env", "resources", "timeout_seconds", "max_retries", "priority", "mode",
  "secrets", "user", "read_only_rootfs", "notify", "parent_id", "tags", "inputs", "preparation", "service", "batch", "batch_score",
]);

// errorField is the spec field an API error is about: its field when the
// gateway sent one, else the field its message starts with (the job
// service's messages name it first: "resources.cpus must be ...",
// "field resources.gpus: got a string ...", "unknown field \"x\" ..."), or "".
function errorField(err) {
  if (!err) return "";
  if (err.field) return err.field;
  const msg = err.message || "";
  const unknown = /^unknown field "([^"]+)"/.exec(msg);
  if (unknown) return unknown[1];
  const m = /^field "?([A-Za-z0-9_.[\]-]+)"?/.exec(msg) || /^([a-z_]+(?:\.[A-Za-z0-9_-]+|\[\d+\])*)(?=[ :])/.exec(msg);
  return m && specFields.has(m[1].split(/[.[]/)[0]) ? m[1] : "";
}

// fieldIn is the name in names that field is about: itself, or the
// longest name it is below ("env.FOO" is about "env").
function fieldIn(field, names) {
  let best = "";
  for (const n of names) {
    if ((field === n || field.startsWith(n + ".") || field.startsWith(n + "[")) && n.length > best.length) best = n;
  }
  return best;
}

function labelled(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "muted field-hint" }, hint) : "");
}

// pairs reads "KEY=VALUE" lines into a map; a line without "=" is an error
// about field.
function pairs(text, field) {
  const out = {};
  text.split("\n").forEach((line, i) => {
    line = line.trim();
    if (!line) return;
    const eq = line.indexOf("=");
    if (eq <= 0) throw makeError(field, `${field}: line ${i + 1} is not KEY=VALUE`);
    out[line.slice(0, eq)] = line.slice(eq + 1);
  });
  return Object.keys(out).length ? out : undefined;
}

// specFromForm is the job spec the form says; empty inputs are left out,
// so the gateway's defaults apply.
function specFromForm(form) {
  const v = (n) => form.elements[n].value.trim();
  const spec = {};
  for (const f of textFields) if (v(f.name)) spec[f.name] = v(f.name);
  const argv = form.elements.command.value.split("\n").filter((a) => a.trim() !== "");
  spec.command = argv;
  const env = pairs(form.elements.env.value, "env");
  if (env) spec.env = env;
  const tags = pairs(form.elements.tags.value, "tags");
  if (tags) spec.tags = tags;
  const resources = {};
  for (const f of numberFields) {
    const raw = v(f.name);
    if (raw === "") continue;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw makeError(f.name, `${f.name} must be a number`);
    const [top, sub] = f.name.split(".");
    if (sub) resources[sub] = n;
    else spec[top] = n;
  }
  if (v("resources.gpu_model")) resources.gpu_model = v("resources.gpu_model");
  if (Object.keys(resources).length) spec.resources = resources;
  if (v("priority")) spec.priority = v("priority");
  if (v("mode")) spec.mode = v("mode");
  return spec;
}

// yamlLine is the 1-based line of the block-style key path ("resources.gpus")
// in text, or 0 when it cannot be found (flow style, a missing key).
function yamlLine(text, path) {
  const segs = path.replace(/\[\d+\]/g, "").split(".");
  const lines = text.split("\n");
  let parentIndent = -1;
  let i = 0;
  for (const seg of segs) {
    const key = new RegExp(`^(\\s*)(["']?)${seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\2\\s*:`);
    let found = -1;
    for (; i < lines.length; i++) {
      const line = lines[i];
      if (!line.trim() || line.trim().startsWith("#")) continue;
      const indent = line.length - line.trimStart().length;
      if (indent <= parentIndent) return 0; // left the parent's block
      const m = key.exec(line);
      if (m && m[1].length > parentIndent) {
        found = i;
        parentIndent = m[1].length;
        i++;
        break;
      }
    }
    if (found < 0) return 0;
    if (seg === segs[segs.length - 1]) return found + 1;
  }
  return 0;
}

// selectLine selects the 1-based line n of a textarea, to point at an error.
function selectLine(textarea, n) {
  const lines = textarea.value.split("\n");
  const start = lines.slice(0, n - 1).reduce((sum, l) => sum + l.length + 1, 0);
  textarea.focus();
  textarea.setSelectionRange(start, start + (lines[n - 1] || "").length);
}

// parseYAML reads a YAML text as a spec: {spec}, or {problem, line?}
// saying what is wrong with it.
function parseYAML(text) {
  let spec;
  try {
    // The core schema is YAML 1.2's, what the CLI's decoder reads: no
    // dates, no yes/no booleans.
    spec = jsyaml.load(text, { schema: jsyaml.CORE_SCHEMA });
  } catch (err) {
    if (err && err.mark) return { problem: err.reason, line: err.mark.line + 1, column: err.mark.column + 1 };
    return { problem: "YAML syntax error: " + (err && err.message) };
  }
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
    return { problem: "the job spec must be a mapping of fields (name: ..., image: ..., command: [...])" };
  }
  return { spec };
}

function render(root) {
  const mayRun = can("submit");
  const result = h("div", { class: "submit-result", "data-test": "submit-result" });
  let stopWatch = null;

  // watch shows the submitted job and follows its status until it ends.
  function watch(job) {
    if (stopWatch) stopWatch();
    const badge = h("span", { "data-test": "submit-status" }, statusBadge(job.status));
    result.replaceChildren(h("div", { class: "card ok" }, "Submitted ", jobLink(job.id), " ", badge));
    const terminal = (s) => s === "succeeded" || s === "failed" || s === "canceled";
    if (terminal(job.status)) return;
    stopWatch = poll(async () => {
      const j = await api("GET", "/v1/jobs/" + encodeURIComponent(job.id));
      badge.replaceChildren(statusBadge(j.status));
      badge.dataset.status = j.status;
      if (terminal(j.status) && stopWatch) {
        stopWatch();
        stopWatch = null;
      }
    }, 1000);
  }

  // The form.
  const formError = h("div", { "data-test": "form-error" });
  const form = h(
    "form",
    { class: "card submit-form", "data-test": "submit-form", autocomplete: "off" },
    h("h2", {}, "Job"),
    h(
      "div",
      { class: "grid-2" },
      ...textFields.map((f) => labelled(f.label, h("input", { type: "text", name: f.name, placeholder: f.placeholder, "data-test": "input-" + f.name }))),
      labelled(
        "Mode",
        h("select", { name: "mode", "data-test": "input-mode" }, h("option", { value: "" }, "container (default)"), h("option", { value: "process" }, "process (host)")),
      ),
    ),
    labelled(
      "Command",
      h("textarea", { name: "command", rows: "3", class: "mono", placeholder: "/bin/toolbox\necho\nhello", "data-test": "input-command" }),
      "One argument per line; it runs without a shell.",
    ),
    h(
      "div",
      { class: "grid-2" },
      labelled("Environment", h("textarea", { name: "env", rows: "3", class: "mono", placeholder: "KEY=value", "data-test": "input-env" })),
      labelled("Tags", h("textarea", { name: "tags", rows: "3", class: "mono", placeholder: "team=vision", "data-test": "input-tags" })),
    ),
    h(
      "div",
      { class: "grid-3" },
      ...numberFields.map((f) => labelled(f.label, h("input", { type: "number", name: f.name, step: f.step, min: "0", "data-test": "input-" + f.name }))),
      labelled("GPU model", h("input", { type: "text", name: "resources.gpu_model", placeholder: "H100", "data-test": "input-resources.gpu_model" })),
      labelled(
        "Priority",
        h(
          "select",
          { name: "priority", "data-test": "input-priority" },
          h("option", { value: "" }, "normal (default)"),
          h("option", { value: "high" }, "high"),
          h("option", { value: "low" }, "low"),
        ),
      ),
    ),
    formError,
    h(
      "div",
      { class: "toolbar" },
      h("button", { type: "submit", class: "btn", "data-test": "submit-button" }, "Submit"),
      h("button", { type: "button", class: "btn btn-small", "data-test": "form-to-yaml" }, "Edit as YAML"),
    ),
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.replaceChildren();
    fieldErrors(form, null);
    try {
      const job = await api("POST", "/v1/jobs", specFromForm(form));
      watch(job);
    } catch (err) {
      const field = fieldIn(errorField(err), formFields);
      if (field) fieldErrors(form, withField(err, field));
      else showError(formError, err);
    }
  });

  // The YAML editor.
  const editor = h("textarea", { name: "yaml", rows: "16", class: "mono yaml-editor", spellcheck: "false", "data-test": "yaml-editor" });
  editor.value = exampleYAML;
  const yamlError = h("div", { class: "yaml-errors", "data-test": "yaml-errors" });
  const yamlForm = h(
    "form",
    { class: "card yaml-form", "data-test": "yaml-form" },
    h("h2", {}, "YAML spec"),
    editor,
    yamlError,
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "btn", "data-test": "yaml-submit" }, "Submit YAML")),
  );
  // yamlFail shows what is wrong, where: the field ("resources.cpus") and
  // its line when it can be found; the line is selected in the editor.
  function yamlFail(test, message, { field = "", line = 0, column = 0 } = {}) {
    const where = line ? "line " + line + (column ? ", column " + column : "") : "";
    yamlError.replaceChildren(
      h(
        "div",
        { class: "error field-error", "data-test": test, "data-field": field, "data-line": line ? String(line) : "" },
        test === "yaml-syntax-error" ? "YAML syntax error" : "",
        field ? h("span", { class: "mono", "data-test": "yaml-error-field" }, field) : "",
        where ? [field ? " " : " at ", h("span", { class: "mono", "data-test": "yaml-error-line" }, where)] : "",
        ": ",
        message,
      ),
    );
    if (line) selectLine(editor, line);
  }
  yamlForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    yamlError.replaceChildren();
    const parsed = parseYAML(editor.value);
    if (parsed.problem) {
      yamlFail("yaml-syntax-error", parsed.problem, parsed);
      return;
    }
    try {
      watch(await api("POST", "/v1/jobs", parsed.spec));
    } catch (err) {
      const field = errorField(err);
      if (!field) {
        showError(yamlError, err);
        return;
      }
      yamlFail("yaml-field-error", err.message, { field, line: yamlLine(editor.value, field) });
    }
  });

  form.querySelector('[data-test="form-to-yaml"]').addEventListener("click", () => {
    formError.replaceChildren();
    try {
      editor.value = jsyaml.dump(specFromForm(form), { schema: jsyaml.CORE_SCHEMA });
      editor.focus();
    } catch (err) {
      fieldErrors(form, err);
    }
  });

  root.replaceChildren(
    h("h1", {}, "Submit a job"),
    mayRun ? "" : h("p", { class: "error", "data-test": "no-submit-scope" }, "This token may read but not submit jobs (it lacks the submit scope)."),
    result,
    h("div", { class: "grid-2 submit-grid" }, form, yamlForm),
  );
  if (!mayRun) for (const b of root.querySelectorAll('button[type="submit"]')) b.disabled = true;
  return () => stopWatch && stopWatch();
}

register("/submit", render);
