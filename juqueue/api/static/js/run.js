// One run: its command and settings, dependencies, the attempts (node, slots, start, end,
// exit code, why it ended), the live tail of stdout and stderr, download links, its actions.
import { getJSON, post, say, throttled, runPath, visible, backingOff } from "./api.js";
import { h, clear, VERBS, runLink, time, duration, confirmDialog, verbAnswer } from "./dom.js";
import { subscribe } from "./feed.js";

const TAIL = 65536;  // bytes of a log shown at first
const KEEP = 400000;  // characters of a log kept on the page

function why(a) {
  const parts = [a.end_reason, a.stop_reason && "stop: " + a.stop_reason, a.interrupted_by && "by " + a.interrupted_by].filter(Boolean);
  return parts.join("; ");
}

function attemptRows(gid, a) {
  const links = ["out", "err"].map((s) => h("a", { href: `${runPath(gid)}/logs/download?attempt=${a.number}&stream=${s}`, download: "" }, "std" + s + " "));
  const row = h("tr", {},
    h("td", {}, a.number), h("td", {}, a.node || ""), h("td", {}, a.host || ""), h("td", {}, (a.slots || []).join(", ")),
    h("td", {}, time(a.started_at)), h("td", {}, time(a.ended_at)),
    h("td", {}, a.started_at ? duration((a.ended_at || Date.now() / 1000) - a.started_at) : ""),
    h("td", { class: a.exit_code ? "s-failed" : "" }, a.exit_code ?? ""), h("td", {}, why(a)), h("td", {}, links));
  if (!a.stderr_tail || !a.stderr_tail.length) return [row];
  const tail = h("details", {}, h("summary", {}, `stderr of attempt ${a.number} (last lines)`), h("pre", { class: "log" }, a.stderr_tail.join("\n")));
  return [row, h("tr", {}, h("td", { colspan: 10 }, tail))];
}

function attempts(run) {
  if (!run.attempts.length) return h("p", { class: "muted" }, "No attempt yet.");
  const heads = ["#", "node", "host", "slots", "start", "end", "took", "exit", "why it ended", "logs"];
  return h("table", { id: "attempts" }, h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))),
    h("tbody", {}, run.attempts.map((a) => attemptRows(run.global_id, a))));
}

function definition(def, run) {
  const spec = def.spec || {};
  const rows = Object.entries(spec).filter(([k]) => !["cmd", "experiment", "id", "depends_on"].includes(k))
    .map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? ""))));
  return [h("h2", {}, "Command"), h("pre", { class: "log", id: "command" }, def.cmd.map(quote).join(" ")),
    run.depends_on.length ? [h("h2", {}, "Depends on"), h("ul", {}, run.depends_on.map((g) => h("li", {}, runLink(g))))] : null,
    h("details", {}, h("summary", {}, "Definition"), h("table", { class: "kv" }, h("tbody", {}, rows)))];
}

function quote(arg) { return /^[\w@%+=:,./-]+$/.test(arg) ? arg : "'" + arg.replace(/'/g, "'\\''") + "'"; }

// Follows one stream of the latest attempt: its tail first, then what is appended (while the tab is visible).
function follower(gid, stream) {
  const pre = h("pre", { class: "log", id: "log-" + stream, "aria-label": "std" + stream, tabindex: "0" });
  const follow = h("input", { type: "checkbox", checked: true });
  let attempt = null, offset = 0, final = false, stopped = false, timer = null;
  const append = (text) => {
    if (!text) return;
    pre.append(text);
    if (pre.textContent.length > KEEP) pre.textContent = pre.textContent.slice(-KEEP);
    if (follow.checked) pre.scrollTop = pre.scrollHeight;
  };
  const poll = async () => {
    timer = null;
    if (stopped) return;
    if (visible() && !backingOff()) {
      try {
        const q = attempt === null ? `tail=${TAIL}` : `attempt=${attempt}&offset=${offset}`;
        const c = await getJSON(`${runPath(gid)}/logs?stream=${stream}&${q}`);
        if (attempt === null || c.attempt !== attempt) pre.textContent = "";
        attempt = c.attempt; offset = c.next_offset; append(c.text);
        if (attempt === 0 || c.latest_attempt > attempt) attempt = null;  // not started, or a newer attempt: its tail next
        final = c.final && attempt !== null && offset >= c.size;
      } catch (err) { say(err.message); }
    }
    if (!stopped && !final) timer = setTimeout(poll, 1000);
  };
  poll();
  return { el: h("section", {}, h("h3", {}, "std" + stream, " ", h("label", { class: "muted" }, follow, " follow")), pre),
    restart() { if (final) { final = false; if (!timer) poll(); } },
    stop() { stopped = true; clearTimeout(timer); } };
}

export function mount(view, gid) {
  const head = h("div");
  const actions = h("div", { class: "toolbar" });
  const answer = h("div", { class: "answer", role: "status" });
  const body = h("div");
  const defEl = h("div");
  const logs = [follower(gid, "out"), follower(gid, "err")];
  view.append(h("h1", {}, "Run ", h("span", { id: "run-id" }, gid)), head, actions, answer, defEl, body, h("h2", {}, "Output"), ...logs.map((l) => l.el));
  let status = null, def = null, lastRun = null;

  async function act(verb) {
    if (!(await confirmDialog(`${verb.label} 1 run (${gid})?`))) return;
    try {
      clear(answer, verbAnswer(verb, await post("api/runs/" + verb.name, { ids: [gid] })));
      load();
    } catch (err) { say(err.message); }
  }

  function showStatus(run) {
    status = run.status;
    clear(head, h("p", {}, "Status ", h("strong", { id: "run-status", class: "s-" + run.status }, run.status),
      ` · attempt ${run.attempt}`, run.exit_code !== null ? ` · exit code ${run.exit_code}` : "", ` · cluster ${run.cluster}`,
      run.node ? ` · node ${run.node}` : "", ` · retries ${run.retries_used}/${run.max_retries}`),
      run.reason ? h("p", { class: run.status === "failed" ? "banner" : "muted" }, run.status === "failed" ? "Why it failed: " : "Reason: ", run.reason) : null);
    clear(actions, VERBS.map((v) => h("button", { type: "button", class: v.name === "cancel" ? "danger" : "",
      disabled: !v.applies.includes(run.status), onclick: () => act(v) }, v.label)));
  }

  async function load() {
    try {
      const run = await getJSON(runPath(gid));
      if (def && !lastRun) clear(defEl, definition(def, run));
      lastRun = run;
      showStatus(run);
      clear(body, h("h2", {}, "Attempts"), attempts(run),
        h("details", {}, h("summary", {}, `History (${run.events.length} events)`), h("table", {}, h("tbody", {},
          run.events.map((e) => h("tr", {}, h("td", {}, time(e.ts)), h("td", {}, e.kind), h("td", {}, e.attempt ?? ""), h("td", {}, e.node || ""), h("td", {}, e.detail || "")))))));
      say("");
    } catch (err) { say(err.message); }
  }

  const refresh = throttled(load, 2000);
  const off = subscribe((type, data) => {
    const mine = type === "resync" || (data.runs || []).some((r) => r.global_id === gid);
    if (!mine) return;
    const row = (data.runs || []).find((r) => r.global_id === gid);
    if (row && row.status !== status) { showStatus(Object.assign({}, row)); for (const l of logs) l.restart(); }
    refresh.request();
  });
  getJSON(runPath(gid) + "/definition").then((d) => { def = d; if (lastRun) clear(defEl, definition(def, lastRun)); })
    .catch((err) => say(err.message));
  load();
  return () => { off(); refresh.stop(); for (const l of logs) l.stop(); };
}
