// Building the page. Everything a user or a run wrote goes in as text (text nodes,
// textContent): never as markup, so a run id like "<img onerror=…>" stays text.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "checked" || key === "disabled" || key === "value" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));  // a string becomes a text node
  }
  return el;
}

export function clear(el, ...children) { el.replaceChildren(); for (const c of children.flat(Infinity)) if (c) el.append(c); return el; }

export const STATUSES = ["held", "queued", "assigned", "running", "completed", "failed", "cancelled"];

// Which statuses each run verb acts on (the server's run verbs; it skips the others and says why).
export const VERBS = [
  { name: "cancel", label: "Cancel", done: "cancelled", applies: ["held", "queued", "assigned", "running"] },
  { name: "requeue", label: "Requeue", done: "requeued", applies: ["failed", "cancelled"] },
  { name: "resume", label: "Resume", done: "resumed", applies: ["held", "failed", "cancelled"] },
  { name: "hold", label: "Hold", done: "held", applies: ["queued", "assigned", "running"] },
  { name: "release", label: "Release", done: "released", applies: ["held"] },
];

export function runLink(gid) { return h("a", { href: "#/run/" + encodeURIComponent(gid) }, gid); }

export function time(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

export function hours(value) { return value === null || value === undefined ? "—" : Number(value).toFixed(value < 1 ? 3 : value < 10 ? 2 : 1); }
export function pct(value) { return value === null || value === undefined ? "—" : Math.round(value * 100) + " %"; }
export function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

// A stable colour per experiment (its name hashed to a hue).
export function hue(name) {
  let x = 0;
  for (const ch of String(name)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

// Asks in the page's one <dialog>; resolves true when the user confirms.
export function confirmDialog(text, detail) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  clear(document.getElementById("confirm-detail"), detail || null);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });
}

// The answer of a run verb: what was done, what was skipped and why.
export function verbAnswer(verb, answer) {
  const done = answer[verb.done] || [];
  const skipped = answer.skipped || [];
  const out = h("div", {}, h("p", {}, `${verb.label}: ${plural(done.length, "run")} ${verb.done}` +
    (skipped.length ? `, ${skipped.length} skipped` : "") + (answer.unknown && answer.unknown.length ? `, ${answer.unknown.length} unknown` : "") +
    (answer.matched === 0 ? " (the selection matched no run)" : ".")));
  if (skipped.length) {
    const reasons = answer.skipped_reasons || {};
    out.append(h("ul", {}, skipped.slice(0, 20).map((g) => h("li", {}, runLink(g), " — ", reasons[g] || "skipped"))));
    if (skipped.length > 20) out.append(h("p", { class: "muted" }, `and ${skipped.length - 20} more`));
  }
  return out;
}
