// The portal's core (portal-core): API calls through /ui/api, DOM building
// without innerHTML, hash routing, the session, tables, charts, formatting.
// Every page module imports from here; see PORTAL-CONTRACT.md for the names.
import uPlot from "/ui/vendor/uPlot.esm.js";

// ---- API ----

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || code || ("HTTP " + status));
    this.name = "ApiError";
    this.status = status;
    this.code = code || "";
    this.field = field || "";
  }
}

let current = null; // the /ui/session answer, once signed in
let onUnauthorized = () => {};

// apiFetch sends a /v1 call through the session's mirror and returns the
// Response as it is (for streams and downloads); api() is the JSON one.
export async function apiFetch(method, path, body, opts = {}) {
  const headers = { "Accept": opts.accept || "application/json" };
  if (method !== "GET" && method !== "HEAD" && current) headers["X-CSRF-Token"] = current.csrf_token;
  let payload;
  if (body !== undefined && body !== null) {
    headers["Content-Type"] = "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const resp = await fetch("/ui/api" + path, {
    method, headers, body: payload, credentials: "same-origin", signal: opts.signal,
  });
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

async function errorOf(resp) {
  let code = "", message = "", field = "";
  try {
    const b = await resp.json();
    if (b && b.error) ({ code = "", message = "", field = "" } = b.error);
  } catch (_) { /* not JSON */ }
  const err = new ApiError(resp.status, code, message || resp.statusText, field);
  if (resp.status === 401) onUnauthorized(err);
  return err;
}

export async function api(method, path, body) {
  const resp = await apiFetch(method, path, body);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

// ---- session ----

export function session() { return current; }

// can: admin implies submit implies read; the system admin can everything.
export function can(scope) {
  if (!current) return false;
  if (current.system) return true;
  const s = current.scopes || [];
  if (s.includes("admin")) return true;
  if (scope === "read" && s.includes("submit")) return true;
  return s.includes(scope);
}

export async function loadSession() {
  const resp = await fetch("/ui/session", { credentials: "same-origin" });
  current = resp.ok ? await resp.json() : null;
  return current;
}

export async function login(token) {
  const resp = await fetch("/ui/login", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "Accept": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!resp.ok) throw await errorOf(resp);
  current = await resp.json();
  return current;
}

export async function logout() {
  const headers = current ? { "X-CSRF-Token": current.csrf_token } : {};
  await fetch("/ui/logout", { method: "POST", credentials: "same-origin", headers });
  current = null;
}

export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// ---- DOM ----

const SAFE_URL = /^(#|\/(?!\/)|https?:|mailto:|\?)/i;

// h builds an element. Strings become text nodes, never markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function") {
      el.addEventListener(k.replace(/^on/, "").toLowerCase(), v);
    } else if (k === "class" || k === "className") {
      el.className = v;
    } else if (k === "value" || k === "checked" || k === "selected" || k === "disabled") {
      el[k] = v;
    } else if (k === "href" || k === "src" || k === "action") {
      // No javascript: or data: URLs from data the user controls.
      if (SAFE_URL.test(String(v))) el.setAttribute(k, String(v));
    } else if (/^on/i.test(k) || k === "innerHTML" || k === "outerHTML" || k === "style") {
      throw new Error("h: attribute " + k + " is not allowed");
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// table: columns [{title, render: row => Node|string}], rows; opts.rowAttrs(row)
// gives each <tr>'s attributes, opts.empty the text of an empty table.
export function table(columns, rows, opts = {}) {
  const head = h("tr", null, columns.map(c => h("th", null, c.title)));
  const body = rows.map(r => h("tr", opts.rowAttrs ? opts.rowAttrs(r) : null,
    columns.map(c => h("td", null, c.render(r)))));
  if (!rows.length) body.push(h("tr", null, h("td", { colspan: columns.length, class: "muted" }, opts.empty || "Nothing here.")));
  return h("table", { class: "table" }, h("thead", null, head), h("tbody", null, body));
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "";
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function statusBadge(status) {
  const s = String(status || "unknown").replace(/[^a-z_-]/gi, "");
  return h("span", { class: "badge status-" + s, "data-status": s }, status || "unknown");
}

export function showError(el, err) {
  const msg = err instanceof ApiError
    ? (err.message + (err.code ? ` (${err.status} ${err.code})` : ""))
    : String(err && err.message ? err.message : err);
  el.replaceChildren(h("div", { class: "error", "data-test": "error", role: "alert" }, msg));
}

// fieldErrors puts err's message next to the form's input named err.field
// (or at the top of the form when it names none); old ones go first.
export function fieldErrors(form, err) {
  form.querySelectorAll(".field-error, .form-error").forEach(e => e.remove());
  if (!err) return;
  const msg = err.message || String(err);
  const input = err.field ? form.querySelector(`[name="${CSS.escape(err.field)}"]`) : null;
  if (input) {
    input.insertAdjacentElement("afterend", h("span", { class: "field-error", "data-test": "field-error", "data-field": err.field }, msg));
  } else {
    form.prepend(h("div", { class: "error form-error", "data-test": "error" }, msg));
  }
}

// ---- charts ----

const PALETTE = ["#2457c5", "#c0392b", "#1e8a4c", "#b7791f", "#7d3cbd", "#138496", "#d35400", "#566573"];

// lineChart draws series of [x, y] points on one x axis (the step) with
// uPlot: drag to zoom, double-click to reset.
export function lineChart(el, { title, xLabel, series }) {
  let plot = null;
  const width = () => Math.max(320, el.clientWidth || 600);
  const build = (ser) => {
    const xs = [...new Set(ser.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const ys = ser.map(s => {
      const col = new Array(xs.length).fill(null);
      for (const [x, y] of s.points) col[index.get(x)] = y;
      return col;
    });
    const opts = {
      title, width: width(), height: 240,
      scales: { x: { time: false } },
      axes: [{ label: xLabel || "step" }, {}],
      series: [{ label: xLabel || "step" }, ...ser.map((s, i) => ({
        label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true, points: { show: xs.length < 60 },
      }))],
      cursor: { drag: { x: true, y: false } },
    };
    if (plot) plot.destroy();
    plot = new uPlot(opts, [xs, ...ys], el);
  };
  build(series);
  const ro = new ResizeObserver(() => { if (plot) plot.setSize({ width: width(), height: 240 }); });
  ro.observe(el);
  return {
    update(ser) {
      // Same series, more points: keep the zoom (setData resets only when asked).
      if (plot && ser.length === plot.series.length - 1) {
        const xs = [...new Set(ser.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
        const index = new Map(xs.map((x, i) => [x, i]));
        const ys = ser.map(s => {
          const col = new Array(xs.length).fill(null);
          for (const [x, y] of s.points) col[index.get(x)] = y;
          return col;
        });
        plot.setData([xs, ...ys]);
      } else {
        build(ser);
      }
    },
    destroy() { ro.disconnect(); if (plot) plot.destroy(); plot = null; },
  };
}

// ---- routing ----

const routes = [];
let cleanups = [];
let polls = new Set();

// register(pattern, render): pattern like "/jobs/:id".
export function register(pattern, render) {
  const names = [];
  const re = new RegExp("^" + pattern.replace(/\/:([a-zA-Z_]+)/g, (_, n) => { names.push(n); return "/([^/]+)"; }) + "/?$");
  routes.push({ pattern, re, names, render });
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// poll calls fn now and then every ms while the page is shown, never two at
// once; navigation away stops it.
export function poll(fn, ms) {
  let stopped = false, timer = null;
  const tick = async () => {
    if (stopped) return;
    try { if (!document.hidden) await fn(); } catch (e) { console.warn("poll:", e); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  const stop = () => { stopped = true; clearTimeout(timer); polls.delete(stop); };
  polls.add(stop);
  tick();
  return stop;
}

export function currentPath() {
  const raw = location.hash.replace(/^#/, "") || "/jobs";
  const [p, q] = raw.split("?");
  return { path: p, query: new URLSearchParams(q || "") };
}

let routeListener = null;
export function setRouteListener(fn) { routeListener = fn; }

export function route() {
  for (const c of cleanups) { try { c(); } catch (e) { console.warn(e); } }
  cleanups = [];
  for (const stop of [...polls]) stop();
  const root = document.getElementById("main");
  root.replaceChildren();
  const { path, query } = currentPath();
  if (routeListener) routeListener(path);
  for (const r of routes) {
    const m = path.match(r.re);
    if (!m) continue;
    const params = {};
    r.names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
    try {
      const c = r.render(root, params, query);
      if (typeof c === "function") cleanups.push(c);
      else if (c && typeof c.then === "function") {
        c.then(f => { if (typeof f === "function") cleanups.push(f); }, e => showError(root, e));
      }
    } catch (e) {
      showError(root, e);
    }
    return;
  }
  root.replaceChildren(h("div", { class: "card", "data-test": "not-found" },
    h("h1", null, "Not found"), h("p", { class: "muted" }, "No page for " + path + ".")));
}

// download saves a Response's body as a file.
export async function download(resp, filename) {
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: "#", download: filename });
  a.href = url;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
