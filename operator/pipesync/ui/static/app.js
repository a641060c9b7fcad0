// The single-page app: who is logged in, the namespace, the router and live polling.
import { request } from "./api.js";
import { clear, h } from "./dom.js";
import * as pages from "./pages.js";
import { parseRoute, routeFor } from "./util.js";

// The pages and the navigation come from pages.js's page table (PAGES, in its order).
const PAGES = new Map(pages.PAGES.map((entry) => [entry.route, entry]));
const POLL_MS = 2000;

const mainBox = document.getElementById("main");
const nav = document.getElementById("nav");
// After the namespace select: the links' href and active state are set at each render.
for (const { route: name, nav: label } of pages.PAGES) {
  if (label) nav.append(h("a", { testid: `nav-${name}`, "data-page": name }, label));
}
const namespaceSelect = document.getElementById("namespace");
const userName = document.getElementById("user");
const logoutButton = document.getElementById("logout");
let namespaces = [];
let timers = [];
let leaving = [];
let generation = 0;

function stopPage() {
  timers.forEach(clearInterval);
  leaving.forEach((fn) => fn());
  timers = []; leaving = [];
}

async function whoami() {
  try {
    const me = await request("whoami");
    userName.textContent = me.user.username;
    logoutButton.hidden = me.auth !== "token";
    return true;
  } catch {
    return false;
  }
}

async function loadNamespaces() {
  namespaces = (await request("namespaces")).items.map((item) => item.name);
  clear(namespaceSelect);
  for (const name of namespaces) {
    const option = document.createElement("option");
    option.value = name; option.textContent = name;
    namespaceSelect.append(option);
  }
}

async function render() {
  stopPage();
  const mine = ++generation;
  const route = parseRoute(window.location.hash);
  // Each render draws into its own box: a render still waiting on the network when the
  // next one starts (a login changes the hash and renders) then draws into a box that is
  // no longer on the page, instead of adding a second header and table.
  const main = h("div", { class: "view" });
  clear(mainBox).append(main);
  if (route.page === "login") {
    nav.hidden = true;
    pages.login({ main }, async () => { await start(); });
    return;
  }
  if (!(await whoami())) { window.location.hash = "#/login"; return; }
  if (!namespaces.length) await loadNamespaces();
  if (mine !== generation) return;
  nav.hidden = false;
  if (!namespaces.length) {
    pages.showError(main, "You may not list runs in any namespace.");
    return;
  }
  if (route.page === "home" || !namespaces.includes(route.namespace)) {
    if (route.page !== "home") {
      pages.showError(main, `You may not see namespace ${route.namespace}, or it does not exist.`);
      return;
    }
    window.location.hash = routeFor(namespaces[0], "runs");
    return;
  }
  namespaceSelect.value = route.namespace;
  for (const anchor of nav.querySelectorAll("a[data-page]")) {
    anchor.href = routeFor(route.namespace, anchor.dataset.page);
    anchor.classList.toggle("active", route.page.startsWith(anchor.dataset.page));
  }
  const page = PAGES.get(route.page)?.draw;
  if (!page) { pages.showError(main, "No such page."); return; }
  const ctx = {
    main, namespace: route.namespace, route,
    poll(fn) {
      timers.push(setInterval(() => {
        if (document.hidden || mine !== generation) return;
        fn().catch((error) => console.warn("refresh failed", error));
      }, POLL_MS));
    },
    onLeave(fn) { leaving.push(fn); },
  };
  try {
    await page(ctx);
  } catch (error) {
    if (mine === generation) pages.showError(main, error);
  }
}

async function start() {
  namespaces = [];
  await loadNamespaces().catch(() => {});
  const route = parseRoute(window.location.hash);
  const target = route.page === "login" || route.page === "home"
    ? (namespaces.length ? routeFor(namespaces[0], "runs") : "#/") : window.location.hash;
  // A new hash renders through the hashchange event; rendering here as well drew every
  // page twice.
  if (target !== window.location.hash) window.location.hash = target;
  else render();
}

namespaceSelect.addEventListener("change", () => {
  window.location.hash = routeFor(namespaceSelect.value, "runs");
});
logoutButton.addEventListener("click", async () => {
  await request("logout", { method: "POST" }).catch(() => {});
  namespaces = [];
  userName.textContent = "";
  window.location.hash = "#/login";
});
window.addEventListener("hashchange", render);
render();
