// Usage: per cluster the slots held (nodes × slots) against the slots busy over time, the gap
// between them shaded as waste; efficiency over time; node-hours per experiment; a CSV download.
// uPlot (vendored, MIT) is loaded only when this page opens.
import { getJSON, say, throttled } from "./api.js";
import { h, clear, hours, pct, hue } from "./dom.js";
import { subscribe } from "./feed.js";

let uplotLoading = null;

function loadUplot() {
  if (window.uPlot) return Promise.resolve();
  if (!uplotLoading) {
    uplotLoading = new Promise((resolve, reject) => {
      document.head.append(h("link", { rel: "stylesheet", href: "static/vendor/uplot/uPlot.min.css" }));
      document.head.append(h("script", { src: "static/vendor/uplot/uPlot.iife.min.js", onload: resolve, onerror: () => reject(new Error("could not load the chart library")) }));
    });
  }
  return uplotLoading;
}

// [times, held slots, busy slots, efficiency] from the series' change points, up to now.
function columns(points, slots) {
  const t = [], held = [], busy = [], eff = [];
  for (const p of points) { t.push(p.ts); held.push(p.nodes * slots); busy.push(p.slots_busy); eff.push(p.nodes ? (100 * p.slots_busy) / (p.nodes * slots) : null); }
  if (t.length) { t.push(Date.now() / 1000); held.push(held.at(-1)); busy.push(busy.at(-1)); eff.push(eff.at(-1)); }
  return [t, held, busy, eff];
}

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

function charts(el, name, data, width) {
  const stepped = window.uPlot.paths.stepped({ align: 1 });
  const axes = [{ stroke: css("--fg"), grid: { stroke: css("--line") } }, { stroke: css("--fg"), grid: { stroke: css("--line") } }];
  const slotsChart = new window.uPlot({ title: `${name}: slots held vs busy`, width, height: 220, axes,
    series: [{}, { label: "slots held", stroke: css("--accent"), paths: stepped }, { label: "slots busy", stroke: css("--ok"), fill: css("--ok") + "22", paths: stepped }],
    bands: [{ series: [1, 2], fill: css("--waste") }], scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } } },
  data.slice(0, 3), el);
  const effChart = new window.uPlot({ title: `${name}: efficiency (busy / held)`, width, height: 160, axes,
    series: [{}, { label: "efficiency %", stroke: css("--run"), paths: stepped, value: (_u, v) => (v === null ? "—" : v.toFixed(0) + " %") }],
    scales: { y: { range: [0, 100] } } }, [data[0], data[3]], el);
  return [slotsChart, effChart];
}

function csv(usage, slotsOf) {
  const lines = ["cluster,ts,time,nodes,slots_held,slots_busy"];
  for (const [c, points] of Object.entries(usage.series)) {
    for (const p of points) lines.push([JSON.stringify(c), p.ts, new Date(p.ts * 1000).toISOString(), p.nodes, p.nodes * slotsOf(c), p.slots_busy].join(","));
  }
  return URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
}

export function mount(view) {
  const chartsEl = h("div");
  const perExp = h("div");
  const download = h("p");
  view.append(h("h1", {}, "Usage"), download, chartsEl, h("h2", {}, "Node-hours per experiment"), perExp);
  let plots = new Map(), usage = null, slots = {}, csvUrl = null;
  const slotsOf = (c) => slots[c] || 1;

  function draw() {
    for (const [, ps] of plots) for (const p of ps) p.destroy();
    plots = new Map();
    clear(chartsEl);
    const width = Math.min(1200, view.clientWidth - 10);
    for (const [c, points] of Object.entries(usage.series)) {
      const box = h("section", { class: "chart", "aria-label": "usage of cluster " + c });
      const total = usage.clusters[c] || {};
      box.append(h("h2", {}, c, " ", h("span", { class: "muted" }, `${hours(total.node_hours)} node-hours, efficiency ${pct(total.efficiency)}, ${hours(total.lost_hours)} slot-hours lost`)));
      chartsEl.append(box);
      const data = columns(points, slotsOf(c));
      box.dataset.points = String(points.length);
      plots.set(c, charts(box, c, data, width));
    }
    if (!Object.keys(usage.series).length) chartsEl.append(h("p", { class: "muted" }, "No node has run yet."));
    const exps = Object.entries(usage.experiments).sort((a, b) => b[1].node_hours - a[1].node_hours);
    const max = Math.max(1e-9, ...exps.map(([, u]) => u.node_hours));
    clear(perExp, exps.length ? h("table", { id: "experiment-hours" }, h("tbody", {}, exps.map(([name, u]) => h("tr", {}, h("td", {}, name),
      h("td", { style: "width:50%" }, h("div", { class: "bar" }, h("span", { style: `width:${(100 * u.node_hours) / max}%;background:hsl(${hue(name)},65%,50%)` }))),
      h("td", {}, `${hours(u.node_hours)} node-hours`), h("td", {}, `efficiency ${pct(u.efficiency)}`))))) : h("p", { class: "muted" }, "Nothing billed yet."));
    if (csvUrl) URL.revokeObjectURL(csvUrl);
    csvUrl = csv(usage, slotsOf);
    clear(download, h("a", { href: csvUrl, download: "juqueue-usage.csv" }, "Download the series as CSV"));
  }

  async function load() {
    try {
      const [u, status] = await Promise.all([getJSON("api/usage?max_points=2000"), getJSON("api/status"), loadUplot()]);
      usage = u;
      for (const c of status.clusters) slots[c.name] = c.num_slots || Math.max(1, ...c.nodes.map((n) => n.slots_total || 0));
      draw();
      say("");
    } catch (err) { say(err.message); }
  }

  // A feed point per cluster per batch: appended where it changed, redrawn at most every 2 s.
  const redraw = throttled(async () => {
    for (const [c, ps] of plots) {
      const data = columns(usage.series[c], slotsOf(c));
      ps[0].setData(data.slice(0, 3)); ps[1].setData([data[0], data[3]]);
    }
  }, 2000);
  const refresh = throttled(load, 10000);
  const off = subscribe((type, data) => {
    if (type === "resync" || !usage) { refresh.request(); return; }
    let fresh = false;
    for (const [c, p] of Object.entries(data.usage || {})) {
      const series = usage.series[c];
      if (!series) { fresh = true; continue; }
      const last = series.at(-1);
      if (!last || last.nodes !== p.nodes || last.slots_busy !== p.slots_busy) series.push({ ts: data.ts, nodes: p.nodes, slots_busy: p.slots_busy });
    }
    if (fresh) refresh.request(); else redraw.request();
  });
  load();
  return () => { off(); redraw.stop(); refresh.stop(); for (const [, ps] of plots) for (const p of ps) p.destroy(); if (csvUrl) URL.revokeObjectURL(csvUrl); };
}
