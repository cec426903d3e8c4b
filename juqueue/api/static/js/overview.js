// Overview: banners (store, definition errors, paused clusters), each cluster's nodes, policy,
// consolidation, node-hours and budget, one row per experiment, and the reload button.
import { getJSON, post, say, throttled } from "./api.js";
import { h, clear, STATUSES, hours, pct, duration, plural, confirmDialog } from "./dom.js";
import { subscribe } from "./feed.js";

const FINAL = ["completed", "failed", "cancelled"];
const seen = new Map();  // experiment -> [[ms, final runs], ...]: the rate its runs finish at, for the ETA

function eta(exp) {
  const finals = FINAL.reduce((n, s) => n + (exp.counts[s] || 0), 0);
  const left = exp.total - finals;
  const samples = seen.get(exp.name) || [];
  samples.push([Date.now(), finals]);
  while (samples.length > 2 && Date.now() - samples[0][0] > 600000) samples.shift();
  seen.set(exp.name, samples);
  if (left === 0) return "done";
  const [t0, f0] = samples[0];
  const rate = (finals - f0) / ((Date.now() - t0) / 1000);
  return rate > 0 ? duration(left / rate) : "—";
}

function progress(counts, total) {
  return h("div", { class: "bar", role: "img", "aria-label": STATUSES.map((s) => `${s} ${counts[s] || 0}`).join(", ") },
    STATUSES.filter((s) => counts[s]).map((s) => h("span", { class: "b-" + s, style: `width:${(100 * counts[s]) / Math.max(total, 1)}%`, title: `${s}: ${counts[s]}` })));
}

function budgetBar(b) {
  if (!b || b.budget_node_hours === null || b.budget_node_hours === undefined) return h("span", { class: "muted" }, "no cap");
  const cap = Math.max(b.budget_node_hours, 1e-9);
  const spent = Math.min(100, (100 * b.spent_node_hours) / cap);
  const bar = h("div", { class: "bar", title: "spent; the line marks spent + projected" }, h("span", { class: spent >= 100 ? "b-failed" : "b-running", style: `width:${spent}%` }));
  if (b.projected_node_hours !== null && b.projected_node_hours !== undefined) {
    bar.append(h("span", { class: "mark", style: `left:${Math.min(99.5, (100 * (b.spent_node_hours + b.projected_node_hours)) / cap)}%` }));
  }
  const projected = b.projected_node_hours === null || b.projected_node_hours === undefined ? "unknown" : hours(b.spent_node_hours + b.projected_node_hours);
  return h("div", {}, bar, h("span", { class: "muted" }, `${hours(b.spent_node_hours)} of ${hours(b.budget_node_hours)} node-hours; projected ${projected}`),
    b.reason ? h("div", { class: "s-failed" }, b.reason) : null);
}

function banners(status) {
  const out = [];
  if (status.store_error || status.counts === null) out.push(h("div", { class: "banner" }, "Store unavailable: ", status.store_error || "the run counts cannot be read"));
  for (const c of status.clusters) if (c.paused_reason) out.push(h("div", { class: "banner warn" }, `Cluster ${c.name} is paused: `, c.paused_reason));
  for (const e of status.definition_error_details || []) {
    out.push(h("div", { class: "banner" }, "Definition error", e.file ? [" in ", h("code", {}, e.file)] : null, ": ", e.message || e.text));
  }
  return out;
}

function cluster(c) {
  const live = c.nodes.filter((n) => n.live !== false);
  const u = c.usage || {};
  const surplus = live.filter((n) => n.surplus && n.surplus_reason).map((n) => h("li", {}, n.name, ": ", n.surplus_reason));
  const moves = c.consolidating ? (c.consolidating.moves || []).map((m) => h("li", {}, Object.entries(m).map(([k, v]) => `${k}: ${v}`).join(", "))) : [];
  const row = (label, ...value) => [h("dt", {}, label), h("dd", {}, ...value)];
  return h("section", { class: "card", "aria-label": "cluster " + c.name },
    h("h3", {}, c.name, " ", h("span", { class: "muted" }, c.type || "")),
    h("dl", {},
      row("nodes live / target", `${live.length} / ${c.target_nodes ?? "—"}`),
      row("slots busy", `${live.reduce((n, x) => n + (x.slots_used || 0), 0)} of ${live.reduce((n, x) => n + (x.slots_total || 0), 0)}`),
      row("policy", `${c.scaling_policy || "—"}; consolidation ${c.consolidation || "—"}`),
      c.consolidating ? row("consolidating", `emptying ${c.consolidating.node}`, moves.length ? h("ul", {}, moves) : null) : null,
      c.surplus_reason || surplus.length ? row("surplus kept", c.surplus_reason || "", surplus.length ? h("ul", {}, surplus) : null) : null,
      c.paused_reason ? row("paused", h("span", { class: "s-failed" }, c.paused_reason)) : null,
      row("node-hours", `${hours(u.node_hours)}${u.estimated ? " (estimated)" : ""}`),
      row("efficiency", pct(u.efficiency)),
      row("work lost", `${hours(u.lost_hours)} slot-hours`),
      row("budget", budgetBar(c.budget))));
}

function experimentRow(e) {
  const budget = e.budget_node_hours === null ? h("span", { class: "muted" }, `projected ${hours(e.projected_node_hours)}`)
    : budgetBar({ budget_node_hours: e.budget_node_hours, spent_node_hours: e.spent_node_hours,
      projected_node_hours: e.projected_node_hours, reason: e.budget_reason });
  return h("tr", { "data-experiment": e.name },
    h("td", {}, h("a", { href: "#/runs?experiment=" + encodeURIComponent(e.name) }, e.name),
      e.defined ? null : h("span", { class: "muted" }, " (undefined)"),
      e.source_file ? h("div", { class: "muted" }, e.source_file) : null,
      e.errors.map((x) => h("div", { class: "s-failed" }, x.message || x.text))),
    h("td", {}, progress(e.counts, e.total)),
    h("td", {}, STATUSES.filter((s) => e.counts[s]).map((s) => h("span", { class: "s-" + s }, `${s} ${e.counts[s]} `)),
      h("span", { class: "muted" }, `of ${e.total}`)),
    h("td", {}, hours(e.node_hours)), h("td", {}, pct(e.efficiency)), h("td", {}, eta(e)), h("td", {}, budget));
}

function experiments(list) {
  const heads = ["experiment", "progress", "runs", "node-hours", "efficiency", "ETA", "budget"];
  return h("table", { id: "experiments" }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))),
    h("tbody", {}, list.map(experimentRow)));
}

function countsLine(counts) {
  if (!counts) return h("span", { class: "s-failed" }, "run counts unavailable");
  return STATUSES.map((s) => h("span", { class: "s-" + s }, `${s}: ${counts[s] || 0}  `));
}

async function reload(answerEl) {
  say("");
  clear(answerEl, h("p", { class: "muted" }, "Evaluating the definitions…"));
  try {
    const p = await post("api/reload/preview");
    clear(answerEl);
    const list = (title, ids) => ids.length ? h("div", {}, h("strong", {}, title), h("ul", {}, ids.slice(0, 50).map((g) => h("li", {}, g))), ids.length > 50 ? h("p", {}, `and ${ids.length - 50} more`) : null) : null;
    const detail = h("div", {}, list(`${plural(p.would_stop.length, "live run")} would stop:`, p.would_stop),
      list(`${plural(p.added.length, "run")} added:`, p.added), list(`${plural(p.updated.length, "run")} updated:`, p.updated),
      list(`${plural(p.undefined.length, "run")} no longer defined:`, p.undefined), list("Definition errors:", p.errors));
    const text = p.aborted ? "The definitions cannot be evaluated; a reload would change no run. Reload anyway?"
      : `Reload definitions: ${p.added.length} added, ${p.updated.length} updated, ${p.undefined.length} undefined; ${plural(p.would_stop.length, "live run")} would stop. Reload?`;
    if (!(await confirmDialog(text, detail))) return;
    const r = await post("api/reload?yes=true");
    clear(answerEl, h("p", {}, `Reloaded: ${(r.added || []).length} added, ${(r.updated || []).length} updated, ${(r.undefined || []).length} undefined, ${(r.stopped || []).length} stopped.`),
      (r.errors || []).length ? h("ul", {}, r.errors.map((e) => h("li", { class: "s-failed" }, e))) : null);
  } catch (err) { clear(answerEl); say(err.message); }
}

export function mount(view) {
  const top = h("div", { id: "banners" });
  const counts = h("p", { id: "counts" });
  const clustersEl = h("div", { class: "cards", id: "clusters" });
  const expEl = h("div");
  const answer = h("div", { class: "answer", role: "status" });
  view.append(h("h1", {}, "Overview"), top,
    h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => reload(answer) }, "Reload definitions")), answer,
    counts, h("h2", {}, "Clusters"), clustersEl, h("h2", {}, "Experiments"), expEl);
  // The clusters first, then the experiments (the costlier answer: with 100,000 runs it reads every
  // queued run's definition), each drawn as it arrives, so the page shows something early. While
  // runs change, the clusters are fetched again at most every 10 s and the experiments every 30 s
  // (the counts line follows every delta): an open page must not cost the controller its pace.
  const loadStatus = async () => {
    try {
      const st = await getJSON("api/status");
      clear(top, banners(st));
      clear(counts, countsLine(st.counts));
      clear(clustersEl, st.clusters.map(cluster));
      say("");
    } catch (err) { say(err.message); }
  };
  const loadExperiments = async () => {
    try {
      const list = await getJSON("api/experiments");
      clear(expEl, list.length ? experiments(list) : h("p", { class: "muted" }, "No experiment yet."));
    } catch (err) { say(err.message); }
  };
  const status = throttled(loadStatus, 10000), exps = throttled(loadExperiments, 30000);
  const off = subscribe((type, data) => {
    if (type === "delta" && data.counts) clear(counts, countsLine(data.counts));
    status.request(); exps.request();
  });
  loadStatus().then(loadExperiments);
  return () => { off(); status.stop(); exps.stop(); };
}
