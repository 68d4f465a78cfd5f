// The portal's entry point (portal-core): sign-in, the nav bar, the pages.
import {
  h, route, loadSession, login, logout, session, setUnauthorizedHandler, setRouteListener, showError,
} from "./core.js";

// Every page module, by the contract's file names. A page that is not in
// this build yet (another branch) just leaves its routes "not found".
const PAGES = ["jobs", "job", "experiments", "sweeps", "submit", "queue", "workers", "models", "deployments", "schedules", "triggers", "workspace"];

const NAV = [
  ["#/jobs", "Jobs"], ["#/submit", "Submit"], ["#/experiments", "Experiments"], ["#/sweeps", "Sweeps"], ["#/queue", "Queue"],
  ["#/workers", "Workers"], ["#/models", "Models"], ["#/deployments", "Deployments"],
  ["#/schedules", "Schedules"], ["#/triggers", "Triggers"], ["#/workspace", "Workspace"],
];

async function loadPages() {
  for (const p of PAGES) {
    try {
      await import(`./pages/${p}.js`);
    } catch (e) {
      // A missing module is expected across branches; a broken one is a bug.
      if (/dynamically imported module|Importing a module script failed/i.test(String(e))) console.warn("portal: no page", p);
      else console.error("portal: page", p, e);
    }
  }
}

function renderNav() {
  const nav = document.getElementById("nav");
  const s = session();
  if (!s) { nav.replaceChildren(h("span", { class: "brand" }, "jobgate")); return; }
  nav.replaceChildren(
    h("a", { class: "brand", href: "#/jobs" }, "jobgate"),
    ...NAV.map(([href, label]) => h("a", { href, "data-test": "nav-" + href.slice(2), "data-nav": href.slice(1) }, label)),
    h("span", { class: "who" },
      h("span", { "data-test": "whoami" }, s.token_name, " · ", s.workspace),
      h("button", { class: "btn btn-small", type: "button", "data-test": "logout", onclick: signOut }, "Sign out")),
  );
}

function markNav(path) {
  document.querySelectorAll("#nav a[data-nav]").forEach(a => {
    const p = a.getAttribute("data-nav");
    a.classList.toggle("active", path === p || path.startsWith(p + "/"));
  });
}

async function signOut() {
  await logout();
  showLogin();
}

function showLogin(message) {
  renderNav();
  const main = document.getElementById("main");
  const err = h("div");
  const input = h("input", { type: "password", name: "token", autocomplete: "off", placeholder: "jgt_… or the system token", "data-test": "login-token", required: true });
  const form = h("form", { class: "card login", "data-test": "login-form", method: "post", action: "/ui/login" },
    h("h1", null, "Sign in to jobgate"),
    h("p", { class: "muted" }, "Paste an API token. Its scopes and workspace apply here exactly as in the API."),
    err, input,
    h("button", { class: "btn btn-primary", type: "submit", "data-test": "login-submit" }, "Sign in"));
  if (message) showError(err, message);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await login(input.value);
      start();
    } catch (e) {
      showError(err, e);
    }
  });
  main.replaceChildren(form);
  input.focus();
}

let started = false;
function start() {
  renderNav();
  if (!location.hash || location.hash === "#" || location.hash === "#/") history.replaceState(null, "", "#/jobs");
  if (!started) {
    started = true;
    window.addEventListener("hashchange", () => { if (session()) route(); });
  }
  route();
}

setRouteListener(markNav);
setUnauthorizedHandler(() => showLogin("Your session has ended: sign in again."));

await loadPages();
if (await loadSession()) start();
else showLogin();
