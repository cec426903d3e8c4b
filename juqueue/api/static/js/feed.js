// The live feed (GET api/events, server-sent events), one connection per page, open only
// while the tab is visible. Views subscribe to its messages: "delta" (what a controller batch
// changed) and "resync" (refetch: sent by the server, and by us after a reconnect, since what
// happened while we were away is not replayed). A dropped feed reconnects after a growing pause.

const listeners = new Set();
let source = null, timer = null, retryMs = 1000, opened = 0;

export function subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function emit(type, data) {
  for (const fn of [...listeners]) {
    try { fn(type, data); } catch (err) { console.error(err); }
  }
}

function show(text) { const el = document.getElementById("feed-state"); if (el) el.textContent = text; }

function open() {
  if (source || document.visibilityState !== "visible") return;
  clearTimeout(timer); timer = null;
  source = new EventSource("api/events");
  const first = ++opened === 1;  // the views fetched their data as they mounted
  source.addEventListener("hello", () => {
    retryMs = 1000;
    show("live");
    if (!first) emit("resync", { reason: "reconnected" });
  });
  source.addEventListener("delta", (e) => emit("delta", JSON.parse(e.data)));
  source.addEventListener("resync", (e) => { show("live"); emit("resync", JSON.parse(e.data)); });
  source.onerror = () => {  // dropped (or refused): our own back-off, not EventSource's fixed retry
    close();
    show("reconnecting…");
    timer = setTimeout(open, retryMs);
    retryMs = Math.min(retryMs * 2, 60000);
  };
}

function close() {
  if (source) { source.close(); source = null; }
  clearTimeout(timer); timer = null;
}

export function start() {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") open(); else { close(); show("paused (tab hidden)"); }
  });
  open();
}
