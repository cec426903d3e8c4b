// Requests to the server: relative URLs (a proxy's path prefix keeps working), the page's
// cookie for the token; writes are same-origin fetches, which carry the Origin the server checks.
// A 503 (the controller is busy) backs every request off for a while.

let backoffMs = 0;
let backoffUntil = 0;

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export const visible = () => document.visibilityState === "visible";
export const backingOff = () => Date.now() < backoffUntil;

function busy() {
  backoffMs = Math.min(Math.max(backoffMs * 2, 2000), 60000);
  backoffUntil = Date.now() + backoffMs;
}

async function request(path, options = {}) {
  if (backingOff()) throw new ApiError(503, "the server is busy; trying again in " + Math.ceil((backoffUntil - Date.now()) / 1000) + " s");
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options, { headers }));
  if (resp.status === 503) { busy(); throw new ApiError(503, "the server is busy (503); trying again later"); }
  backoffMs = 0;
  if (resp.status === 401) throw new ApiError(401, "Not signed in: open the link `juqueue serve` printed (or run `juqueue url`).");
  if (!resp.ok) {
    let detail = null;
    try { detail = (await resp.json()).detail; } catch (_e) { /* not JSON */ }
    throw new ApiError(resp.status, typeof detail === "string" ? detail : `${path.split("?")[0]}: HTTP ${resp.status}`);
  }
  return resp;
}

export async function getJSON(path) { return (await request(path)).json(); }

// One page of a list; the total matching comes in X-Total-Count.
export async function getPage(path) {
  const resp = await request(path);
  return { items: await resp.json(), total: Number(resp.headers.get("X-Total-Count") || 0) };
}

export async function post(path, body) {
  const resp = await request(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  return resp.json();
}

export const runPath = (gid) => "api/runs/" + encodeURIComponent(gid);

// Calls `fn` at most every `ms`, only while the tab is visible and the server is not backing
// us off; a call asked for meanwhile runs once, when allowed. Returns {request, stop}.
export function throttled(fn, ms) {
  let last = 0, timer = null, stopped = false, running = false;
  const run = async () => {
    timer = null;
    if (stopped) return;
    if (!visible() || backingOff() || running) { timer = setTimeout(run, Math.max(ms, 1000)); return; }
    last = Date.now(); running = true;
    try { await fn(); } finally { running = false; }
  };
  return {
    request() { if (!timer && !stopped) timer = setTimeout(run, Math.max(0, last + ms - Date.now())); },
    stop() { stopped = true; clearTimeout(timer); },
  };
}

// Shows an error in the page's message line (empty: clears it).
export function say(text) { document.getElementById("message").textContent = text || ""; }
