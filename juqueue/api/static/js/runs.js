// Runs: one server-side page, sorted and filtered (the filter lives in the address), rows
// selected one by one or every run matching the filter, the run verbs in bulk with a
// confirmation that names the count, and rows kept current from the live feed.
import { getJSON, getPage, post, say, throttled } from "./api.js";
import { h, clear, STATUSES, VERBS, runLink, time, plural, confirmDialog, verbAnswer } from "./dom.js";
import { subscribe } from "./feed.js";

const PAGE = 50;
const COLUMNS = [["global_id", "run"], ["status", "status"], ["attempt", "attempt"], ["exit_code", "exit"], ["node", "node"],
  ["cluster", "cluster"], ["started_at", "started"], ["ended_at", "ended"], ["reason", "reason"]];

function readState(params) {
  return { statuses: params.getAll("status").filter((s) => STATUSES.includes(s)), experiment: params.get("experiment") || "",
    cluster: params.get("cluster") || "", node: params.get("node") || "", q: params.get("q") || "",
    sort: params.get("sort") || "", offset: Math.max(0, Number(params.get("offset")) || 0) };
}

function query(st, withPage) {
  const p = new URLSearchParams();
  for (const s of st.statuses) p.append("status", s);
  for (const k of ["experiment", "cluster", "node", "q"]) if (st[k]) p.set(k, st[k]);
  if (st.sort) p.set("sort", st.sort);
  if (withPage) { p.set("offset", st.offset); p.set("limit", PAGE); } else if (st.offset) p.set("offset", st.offset);
  return p.toString();
}

// Whether a run (the feed's row) belongs in the list under this filter.
function matches(run, st) {
  return (!st.statuses.length || st.statuses.includes(run.status)) && (!st.experiment || run.experiment === st.experiment) &&
    (!st.cluster || run.cluster === st.cluster) && (!st.node || run.node === st.node) &&
    (!st.q || run.id.toLowerCase().includes(st.q.toLowerCase()));
}

export function mount(view, _arg, params) {
  const st = readState(params);
  const selected = new Set();
  let allMatching = false, total = 0, rows = new Map();
  const answer = h("div", { class: "answer", role: "status" });
  const tbody = h("tbody");
  const info = h("span", { class: "muted" });
  const selInfo = h("span", { id: "selection" });
  const selectAll = h("button", { type: "button", id: "select-all", onclick: () => { allMatching = !allMatching; syncSelection(); } });
  const pageBox = h("input", { type: "checkbox", "aria-label": "Select every run on this page", onchange: (e) => {
    for (const gid of rows.keys()) { if (e.target.checked) selected.add(gid); else selected.delete(gid); }
    allMatching = false; render();
  } });
  const verbButtons = VERBS.map((v) => h("button", { type: "button", class: v.name === "cancel" ? "danger" : "", onclick: () => act(v) }, v.label));
  const prev = h("button", { type: "button", onclick: () => { st.offset = Math.max(0, st.offset - PAGE); changed(false); } }, "Previous page");
  const next = h("button", { type: "button", onclick: () => { st.offset += PAGE; changed(false); } }, "Next page");

  const text = (label, key, size) => h("label", {}, label + " ", h("input", { type: "search", size, value: st[key], "aria-label": label,
    oninput: debounce((e) => { st[key] = e.target.value.trim(); changed(true); }, 350) }));
  const expSelect = h("select", { "aria-label": "Experiment", onchange: (e) => { st.experiment = e.target.value; changed(true); } },
    h("option", { value: "" }, "any experiment"), st.experiment ? h("option", { value: st.experiment, selected: true }, st.experiment) : null);
  const filters = h("div", { class: "filters" },
    h("fieldset", {}, h("legend", {}, "Status"), STATUSES.map((s) => h("label", {}, h("input", { type: "checkbox", name: "status", value: s,
      checked: st.statuses.includes(s), onchange: (e) => {
        st.statuses = e.target.checked ? [...st.statuses, s] : st.statuses.filter((x) => x !== s); changed(true);
      } }), " " + s))),
    h("label", {}, "Experiment ", expSelect), text("Cluster", "cluster", 10), text("Node", "node", 14), text("Run id contains", "q", 14));

  const sortButton = (field, label) => {
    const dir = st.sort === field ? " ▲" : st.sort === "-" + field ? " ▼" : "";
    return h("th", { "aria-sort": dir ? (dir === " ▲" ? "ascending" : "descending") : null },
      h("button", { type: "button", class: "sort", "aria-label": "Sort by " + label, onclick: () => {
        st.sort = st.sort === field ? "-" + field : field; changed(false);
      } }, label + dir));
  };
  const thead = h("thead");
  view.append(h("h1", {}, "Runs"), filters,
    h("div", { class: "toolbar" }, selInfo, selectAll, verbButtons), answer,
    h("table", { id: "runs" }, thead, tbody), h("div", { class: "pager" }, prev, info, next));

  function rowFor(r) {
    return h("tr", { "data-gid": r.global_id },
      h("td", {}, h("input", { type: "checkbox", "aria-label": "Select " + r.global_id, checked: allMatching || selected.has(r.global_id),
        onchange: (e) => { allMatching = false; if (e.target.checked) selected.add(r.global_id); else selected.delete(r.global_id); syncSelection(); } })),
      h("td", { class: r.defined ? "" : "muted" }, runLink(r.global_id)), h("td", { class: "s-" + r.status }, r.status),
      h("td", {}, r.attempt), h("td", {}, r.exit_code ?? ""), h("td", {}, r.node ?? ""), h("td", {}, r.cluster),
      h("td", {}, time(r.started_at)), h("td", {}, time(r.ended_at)), h("td", {}, r.reason ?? ""));
  }

  function syncSelection() {
    const n = allMatching ? total : selected.size;
    selInfo.textContent = allMatching ? `all ${total} runs matching the filter selected` : `${plural(n, "run")} selected`;
    selectAll.textContent = allMatching ? "Select none" : `Select all ${total} matching`;
    for (const b of verbButtons) b.disabled = n === 0;
    for (const box of tbody.querySelectorAll("input[type=checkbox]")) box.checked = allMatching || selected.has(box.closest("tr").dataset.gid);
    pageBox.checked = rows.size > 0 && [...rows.keys()].every((g) => allMatching || selected.has(g));
  }

  function render() {
    clear(thead, h("tr", {}, h("th", {}, pageBox), COLUMNS.map(([f, l]) => sortButton(f, l))));
    clear(tbody, [...rows.values()].map(rowFor));
    info.textContent = total ? `${st.offset + 1}–${st.offset + rows.size} of ${total}` : "no run matches";
    prev.disabled = st.offset === 0;
    next.disabled = st.offset + PAGE >= total;
    syncSelection();
  }

  async function load() {
    try {
      const page = await getPage("api/runs?" + query(st, true));
      total = page.total;
      rows = new Map(page.items.map((r) => [r.global_id, r]));
      if (!rows.size && st.offset > 0 && total > 0) { st.offset = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE); return load(); }
      render();
      say("");
    } catch (err) { say(err.message); }
  }

  function changed(filter) {
    if (filter) { st.offset = 0; selected.clear(); allMatching = false; }
    history.replaceState(null, "", "#/runs" + (query(st, false) ? "?" + query(st, false) : ""));
    load();
  }

  function filterBody() {
    const f = { statuses: st.statuses.length ? st.statuses : STATUSES };  // no status ticked: every status
    for (const k of ["experiment", "cluster", "node", "q"]) if (st[k]) f[k] = st[k];
    return f;
  }

  async function act(verb) {
    const count = allMatching ? total : selected.size;
    if (!count) return;
    const detail = allMatching ? h("p", {}, "Every run matching the filter: " + (query(st, false).replace(/&?offset=\d+/, "") || "all runs")) : null;
    if (!(await confirmDialog(`${verb.label} ${plural(count, "run")}?`, detail))) return;
    try {
      const body = allMatching ? { filter: filterBody() } : { ids: [...selected] };
      clear(answer, verbAnswer(verb, await post("api/runs/" + verb.name, body)));
      selected.clear(); allMatching = false;
      await load();
    } catch (err) { say(err.message); }
  }

  const refresh = throttled(load, 3000);
  const off = subscribe((type, data) => {
    if (type === "resync") { refresh.request(); return; }
    let stale = false;
    for (const r of data.runs || []) {
      const here = rows.has(r.global_id);
      if (here) {
        rows.set(r.global_id, r);
        const old = tbody.querySelector(`tr[data-gid="${CSS.escape(r.global_id)}"]`);
        if (old) old.replaceWith(rowFor(r));
      }
      // The page is stale when a row leaves the filter, or a run enters it: its status (or node)
      // moved into the filter; other runs not shown are simply on other pages.
      if (here ? !matches(r, st) : (st.statuses.length || st.node) && matches(r, st)) stale = true;
    }
    if (stale) refresh.request();
  });
  render();
  // The experiments' names after the first page is drawn: /api/experiments costs the server more than a page.
  load().then(() => getJSON("api/experiments")).then((exps) => {
    clear(expSelect, h("option", { value: "" }, "any experiment"),
      exps.map((e) => h("option", { value: e.name, selected: e.name === st.experiment }, e.name)));
  }).catch(() => { /* the filter still works with the name in the address */ });
  return () => { off(); refresh.stop(); };
}

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
