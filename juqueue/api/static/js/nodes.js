// Nodes: per cluster a grid of live nodes × slots with the run in each slot (coloured by
// experiment, bordered by status), job id, host, time left against the wall time, heartbeat
// age, badges and reasons, Drain and Stop node; then the ended nodes with why and what was billed.
import { getJSON, post, say, throttled } from "./api.js";
import { h, clear, runLink, time, duration, hue, confirmDialog } from "./dom.js";
import { subscribe } from "./feed.js";

const runStatus = new Map();  // global id -> status, from the feed (a slot's run is assigned or running)

function slot(gid, index) {
  if (!gid) return h("div", { class: "slot free", "data-slot": index }, `slot ${index}: free`);
  const experiment = gid.split("@")[0];
  const status = runStatus.get(gid) || "running";
  return h("div", { class: "slot s-" + status, "data-slot": index, "data-run": gid, title: `${gid} (${status})`,
    style: `border-left-color:hsl(${hue(experiment)},65%,50%)` }, h("span", { class: "muted" }, `slot ${index} `), runLink(gid));
}

function badges(n, emptying, now) {
  const out = [];
  if (n.surplus) out.push(h("span", { class: "badge surplus" }, "surplus"));
  if (emptying) out.push(h("span", { class: "badge emptying" }, "emptying"));
  if (n.protected_until && n.protected_until > now) out.push(h("span", { class: "badge protected" }, "protected " + duration(n.protected_until - now)));
  if (n.replaces) out.push(h("span", { class: "badge replaces" }, "replaces ", n.replaces));
  if (n.drained_by_user) out.push(h("span", { class: "badge" }, "drained by user"));
  if (n.no_devices) out.push(h("span", { class: "badge emptying" }, "no CUDA devices"));
  return out;
}

function timeLeft(n, now) {
  if (!n.time_limit_at) return h("span", { class: "muted" }, "no wall time");
  const total = n.time_limit_at - (n.started_at || now), left = n.time_limit_at - now;
  return h("span", {}, h("div", { class: "bar", title: "wall time used" }, h("span", { class: left < 600 ? "b-failed" : "b-running",
    style: `width:${Math.max(0, Math.min(100, 100 * (1 - left / Math.max(total, 1))))}%` })), `${duration(left)} left of ${duration(total)}`);
}

function nodeCard(n, emptying, act) {
  const now = Date.now() / 1000;
  const why = n.surplus_reason || n.kept_reason || n.reason;
  return h("div", { class: "node", "data-node": n.name },
    h("div", {}, h("strong", {}, n.name), " ", h("span", { class: "muted" }, n.state), h("div", {}, badges(n, emptying, now)),
      h("div", { class: "muted" }, n.job_id ? `job ${n.job_id} · ` : "", n.host || "host not known yet"),
      timeLeft(n, now),
      h("div", { class: "muted" }, n.last_heartbeat ? `heartbeat ${duration(now - n.last_heartbeat)} ago` : "no heartbeat yet",
        ` · ${n.slots_used}/${n.slots_total} slots`),
      why ? h("div", {}, why) : null,
      h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => act("drain", n), disabled: n.state === "stopping" || n.drained_by_user }, "Drain"),
        h("button", { type: "button", class: "danger", onclick: () => act("stop", n), disabled: n.state === "stopping" }, "Stop node"))),
    h("div", { class: "slots" }, (n.slots.length ? n.slots : new Array(n.slots_total).fill(null)).map((g, i) => slot(g, i))));
}

function ended(list) {
  if (!list.length) return h("p", { class: "muted" }, "No ended node.");
  return h("table", { id: "ended-nodes" }, h("thead", {}, h("tr", {}, ["node", "cluster", "state", "why", "billed", "job", "host"].map((t) => h("th", {}, t)))),
    h("tbody", {}, list.map((n) => h("tr", {}, h("td", {}, n.name), h("td", {}, n.cluster), h("td", {}, n.state), h("td", {}, n.reason || ""),
      h("td", {}, n.billed_from ? `${time(n.billed_from)} – ${time(n.billed_until)} (${duration((n.billed_until || Date.now() / 1000) - n.billed_from)}${n.billed_estimated ? ", estimated" : ""})` : "not billed"),
      h("td", {}, n.job_id || ""), h("td", {}, n.host || "")))));
}

export function mount(view) {
  const answer = h("div", { class: "answer", role: "status" });
  const grid = h("div");
  const endedEl = h("div");
  view.append(h("h1", {}, "Nodes"), answer, grid, h("h2", {}, "Ended nodes"), endedEl);
  let nodes = new Map(), clusters = [];

  async function act(action, n) {
    const text = action === "drain" ? `Drain ${n.name}? It takes no new run and is released once empty.`
      : `Stop node ${n.name}? Its ${n.slots_used} runs are interrupted and queued again (no retry spent).`;
    if (!(await confirmDialog(text))) return;
    try {
      const r = await post(`api/nodes/${encodeURIComponent(n.name)}/${action}`, {});
      clear(answer, h("p", {}, r.detail));
      nodes.set(r.node.name, r.node);
      render();
    } catch (err) { say(err.message); }
  }

  function render() {
    const focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("[data-node]") : null;
    const refocus = focused ? [focused.dataset.node, document.activeElement.textContent] : null;
    const live = [...nodes.values()].filter((n) => n.live !== false);
    const names = [...new Set([...clusters.map((c) => c.name), ...live.map((n) => n.cluster)])];
    clear(grid, names.map((c) => {
      const info = clusters.find((x) => x.name === c) || {};
      const mine = live.filter((n) => n.cluster === c);
      const emptying = info.consolidating ? info.consolidating.node : null;
      return h("section", { "aria-label": "cluster " + c }, h("h2", {}, c, " ", h("span", { class: "muted" }, `${mine.length} live, target ${info.target_nodes ?? "—"}`)),
        mine.length ? h("div", { class: "grid" }, mine.map((n) => nodeCard(n, n.name === emptying, act))) : h("p", { class: "muted" }, "No live node."));
    }));
    clear(endedEl, ended([...nodes.values()].filter((n) => n.live === false)));
    if (refocus) {  // a redraw keeps the keyboard's place
      const card = grid.querySelector(`[data-node="${CSS.escape(refocus[0])}"]`);
      const again = card && [...card.querySelectorAll("a, button")].find((el) => el.textContent === refocus[1]);
      if (again) again.focus();
    }
  }

  async function load() {
    try {
      const [list, status] = await Promise.all([getJSON("api/nodes?ended_limit=100"), getJSON("api/status")]);
      nodes = new Map(list.map((n) => [n.name, n]));
      clusters = status.clusters;
      render();
      say("");
    } catch (err) { say(err.message); }
  }

  const refresh = throttled(load, 10000);
  const off = subscribe((type, data) => {
    if (type === "resync") { refresh.request(); return; }
    for (const r of data.runs || []) runStatus.set(r.global_id, r.status);
    for (const n of data.nodes || []) nodes.set(n.name, Object.assign({}, nodes.get(n.name) || {}, n));
    if ((data.nodes || []).length || (data.runs || []).length) render();
  });
  const ticker = setInterval(() => { if (document.visibilityState === "visible") render(); }, 5000);  // ages and time left
  load();
  return () => { off(); refresh.stop(); clearInterval(ticker); };
}
