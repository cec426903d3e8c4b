// The shell: which page the address names (#/, #/runs?…, #/run/<id>, #/nodes, #/usage), the
// version and the Flower link, the live feed. Each page module exports mount(el, params) and
// returns its unmount function.
import { getJSON, say } from "./api.js";
import { h, clear } from "./dom.js";
import * as feed from "./feed.js";
import * as overview from "./overview.js";
import * as runs from "./runs.js";
import * as run from "./run.js";
import * as nodes from "./nodes.js";
import * as usage from "./usage.js";

const PAGES = { "": overview, runs, run, nodes, usage };
let unmount = null;

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query] = hash.split("?");
  const [name, ...rest] = path.split("/");
  return { name: PAGES[name] ? name : "", arg: rest.length ? decodeURIComponent(rest.join("/")) : null,
    params: new URLSearchParams(query || "") };
}

function show() {
  const r = route();
  if (unmount) { try { unmount(); } catch (err) { console.error(err); } unmount = null; }
  say("");
  for (const a of document.querySelectorAll("header nav a")) {
    const current = (a.dataset.page === "overview" ? "" : a.dataset.page) === (r.name === "run" ? "runs" : r.name);
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const view = document.getElementById("view");
  clear(view);
  unmount = PAGES[r.name].mount(view, r.arg, r.params) || null;
}

async function shell() {
  try {
    const info = await getJSON("api/about");
    document.getElementById("version").textContent = info.version || "";
    if (info.flower_url) clear(document.getElementById("flower"), h("a", { href: info.flower_url, rel: "noopener" }, "Flower"));
  } catch (err) { say(err.message); }
}

window.addEventListener("hashchange", show);
show();
feed.start();
shell();
