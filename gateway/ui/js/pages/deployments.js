// #/deployments and #/deployments/:name: deployments with their replicas,
// traffic split, what the scoring router measured (request rate, latency
// percentiles) and a "try it" box that sends one KServe V2 inference
// request through the gateway (POST /v1/deployments/NAME/infer).
import { api, can, fmtTime, h, poll, register, showError, table } from "../core.js";
import { button, card, changeGate, jobLink, kv, pre } from "./pagekit.js";

function deploymentLink(name) {
  return h("a", { href: "#/deployments/" + encodeURIComponent(name), "data-test": "deployment-link" }, name);
}

function statusOf(d) {
  return h("span", { class: "badge deploy-" + d.status, "data-test": "deployment-status" }, d.status);
}

// servesText is what it serves: "iris:2", or the split "iris:1 90%, iris:2 10%".
function servesText(d) {
  const split = d.spec && d.spec.traffic;
  if (split && Object.keys(split).length) {
    return Object.keys(split)
      .sort()
      .map((ref) => `${ref} ${split[ref]}%`)
      .join(", ");
  }
  return (d.spec && d.spec.model) || "";
}

function replicasText(n) {
  return n === 1 ? "1 replica per version" : `${n} replicas per version`;
}

function ms(x) {
  return x == null ? "—" : x.toFixed(x < 10 ? 1 : 0) + " ms";
}

function rateText(t) {
  return t ? t.rate_per_second.toFixed(2) + "/s" : "—";
}

function renderList(root) {
  const body = h("div", { "data-test": "deployments" });
  root.replaceChildren(h("h1", {}, "Deployments"), body);
  const changed = changeGate();
  async function refresh() {
    try {
      const list = await api("GET", "/v1/deployments");
      if (!changed(list)) return;
      const ds = list.deployments || [];
      if (!ds.length) {
        body.replaceChildren(h("p", { class: "muted" }, "No deployment."));
        return;
      }
      const t = table(
        [
          { title: "Deployment", render: (d) => deploymentLink(d.name) },
          { title: "Status", render: statusOf },
          { title: "Replicas", render: (d) => `${d.ready_replicas}/${d.desired_replicas} ready` },
          { title: "Serves", render: (d) => h("span", { class: "mono" }, servesText(d)) },
          { title: "Requests", render: (d) => rateText(d.traffic) },
          { title: "p50 / p95 / p99", render: (d) => (d.traffic ? [d.traffic.p50_ms, d.traffic.p95_ms, d.traffic.p99_ms].map(ms).join(" / ") : "—") },
        ],
        ds,
        { rowAttrs: (d) => ({ "data-test": "deployment-row", "data-name": d.name }) },
      );
      body.replaceChildren(t);
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(body, err);
    }
  }
  return poll(refresh, 5000);
}

// splitBar draws the traffic split between targets as one bar.
function splitBar(targets) {
  const bar = h("div", { class: "split-bar", "data-test": "traffic-split" });
  for (const t of targets) {
    const seg = h("span", { class: "split-seg", title: `${t.model}:${t.version} ${t.weight}%` }, `${t.model}:${t.version} ${t.weight}%`);
    seg.style.flexGrow = String(Math.max(t.weight, 1));
    bar.append(seg);
  }
  return bar;
}

// byVersion writes the requests per model version: "v1: 90, v2: 10".
function byVersion(m) {
  if (!m) return "";
  return Object.keys(m)
    .sort((a, b) => Number(a) - Number(b))
    .map((v) => `v${v}: ${m[v]}`)
    .join(", ");
}

function trafficCard(t) {
  if (!t) return card("Traffic", "deployment-traffic", h("p", { class: "muted" }, "No request in the last minute."));
  return card(
    "Traffic (last " + t.window_seconds + " s)",
    "deployment-traffic",
    kv([
      ["Requests", h("span", { "data-test": "traffic-requests" }, String(t.requests))],
      ["Errors", String(t.errors)],
      ["Rate", h("span", { "data-test": "traffic-rate" }, rateText(t))],
      ["Latency p50", h("span", { "data-test": "latency-p50" }, ms(t.p50_ms))],
      ["Latency p95", h("span", { "data-test": "latency-p95" }, ms(t.p95_ms))],
      ["Latency p99", h("span", { "data-test": "latency-p99" }, ms(t.p99_ms))],
      ["By version", byVersion(t.by_target)],
    ]),
  );
}

function replicasTable(replicas) {
  if (!replicas.length) return h("p", { class: "muted" }, "No replica.");
  return table(
    [
      { title: "Replica", render: (r) => h("span", { class: "mono" }, r.id) },
      { title: "Job", render: (r) => jobLink(r.job_id) },
      { title: "Serves", render: (r) => `${r.model}:${r.version}` },
      { title: "Revision", render: (r) => String(r.revision) },
      { title: "State", render: (r) => h("span", { class: "badge replica-" + r.state, "data-test": "replica-state" }, r.state) },
      { title: "Worker", render: (r) => r.worker || "—" },
      { title: "Address", render: (r) => h("span", { class: "mono" }, r.address || "—") },
      { title: "Restarts", render: (r) => String(r.restarts) },
      { title: "Reason", render: (r) => r.reason || "" },
    ],
    replicas,
    { rowAttrs: () => ({ "data-test": "replica-row" }) },
  );
}

// exampleRequest is a V2 request for the example model server (iris: one
// row of four FP32 features); a person edits it for another model.
const exampleRequest = `{
  "inputs": [
    {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}
  ]
}`;

function tryIt(name) {
  // The gateway asks the submit scope for it: a request runs the model
  // server's code, as a job does.
  if (!can("submit")) return card("Try it", "try-it", h("p", { class: "muted" }, "Sending a request needs a token with the submit scope."));
  const input = h("textarea", { rows: "8", class: "mono", spellcheck: "false", "data-test": "infer-request" });
  input.value = exampleRequest;
  const out = h("div", { "data-test": "infer-result" });
  const send = button(
    "Send",
    "infer-send",
    async () => {
      out.replaceChildren();
      let body;
      try {
        body = JSON.parse(input.value);
      } catch (err) {
        out.replaceChildren(h("div", { class: "error", "data-test": "infer-error" }, "The request is not JSON: " + err.message));
        return;
      }
      const started = performance.now();
      const answer = await api("POST", "/v1/deployments/" + encodeURIComponent(name) + "/infer", body);
      out.replaceChildren(
        h("p", { class: "muted" }, `Answered in ${Math.round(performance.now() - started)} ms:`),
        pre(JSON.stringify(answer, null, 2), "infer-answer"),
      );
    },
    (err) => {
      const box = h("div", { "data-test": "infer-error" });
      showError(box, err);
      out.replaceChildren(box);
    },
    "btn",
  );
  return card("Try it", "try-it", h("p", { class: "muted" }, "A KServe V2 inference request, sent to one of its ready replicas."), input, h("div", { class: "toolbar" }, send), out);
}

function renderDeployment(root, params) {
  const name = params.name;
  const live = h("div", { "data-test": "deployment" });
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/deployments" }, "← Deployments")),
    h("h1", {}, "Deployment ", h("span", { class: "mono" }, name)),
    live,
    tryIt(name),
  );
  const changed = changeGate();
  async function refresh() {
    try {
      const d = await api("GET", "/v1/deployments/" + encodeURIComponent(name));
      if (!changed(d)) return;
      const spec = d.spec || {};
      live.replaceChildren(
        card(
          "Status",
          "deployment-summary",
          h("div", { class: "toolbar" }, statusOf(d), h("span", { "data-test": "deployment-replicas" }, `${d.ready_replicas}/${d.desired_replicas} replicas ready`)),
          d.reason ? h("p", { class: "error" }, d.reason) : "",
          kv([
            ["Serves", h("span", { class: "mono" }, servesText(d))],
            ["Revision", String(d.revision)],
            ["Image", h("span", { class: "mono" }, spec.image || "")],
            ["Command", h("span", { class: "mono" }, (spec.command || []).join(" "))],
            [
              "Scaling",
              spec.autoscale
                ? `autoscale ${spec.autoscale.min}–${spec.autoscale.max}, target ${spec.autoscale.target_concurrency || 8} in flight`
                : replicasText(spec.replicas == null ? 1 : spec.replicas),
            ],
            ["Scoring path", h("span", { class: "mono" }, d.scoring_path)],
            ["Updated", fmtTime(d.updated_at)],
          ]),
          h("h3", {}, "Traffic split"),
          splitBar(d.targets || []),
        ),
        trafficCard(d.traffic),
        card("Replicas", "deployment-replica-list", replicasTable(d.replicas || [])),
      );
    } catch (err) {
      changed(null); // show the page again once the error is gone
      showError(live, err);
    }
  }
  return poll(refresh, 3000);
}

register("/deployments", renderList);
register("/deployments/:name", renderDeployment);
