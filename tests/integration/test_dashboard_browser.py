"""The dashboard in a real browser, and the CSRF rule against a page on another port.

SameSite=Strict does not separate ports: a page another user serves on 127.0.0.1:<other port>
is same-site, so Chromium sends the dashboard's cookie with that page's cross-origin
`fetch(..., {mode: "no-cors", credentials: "include"})`. The server must refuse such writes
(403) while the dashboard's own same-origin writes keep working.

Drives Debian's `chromium` through Playwright (Playwright's own browser download is not used).
Skipped without it; with CI=true that is a failure, so the browser test never passes silently.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Server, write_defs
from support.processes import free_port
from machine_setup import wait_for_machine_setup

pytestmark = pytest.mark.timeout(240)

CLUSTERS = """
local:
  type: local
  num_slots: 3
  max_jobs: 1
  idle_timeout: 120
"""

BROWSE = """
experiment: browse
cluster: local
runs:
  - {id: keep, cmd: ["sleep", "300"]}
  - {id: victim, cmd: ["sleep", "300"]}
"""

LATE = "experiment: late\ncluster: local\nruns: [{id: one, cmd: [sleep, '300']}]\n"

# Another user's page: on load it fires cookie-carrying cross-origin writes at the server.
ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>elsewhere</title></head><body>
<p id="done"></p>
<script>
const target = %(target)r;
async function shoot() {
  const shots = [
    [target + "/api/reload", {}],
    [target + "/api/stop", {}],
    [target + "/api/runs/cancel", {headers: {"Content-Type": "text/plain"}, body: '{"ids": ["browse@victim"]}'}],
  ];
  const out = [];
  for (const [url, extra] of shots) {
    try {
      await fetch(url, Object.assign({method: "POST", mode: "no-cors", credentials: "include"}, extra));
      out.push("sent");
    } catch (err) {
      out.push("error: " + err);
    }
  }
  document.getElementById("done").textContent = out.join(",");
}
shoot();
</script></body></html>
"""


def _chromium() -> str:
    """Debian's chromium and the playwright package, or a skip (a failure under CI=true)."""
    wait_for_machine_setup()
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the Python package `playwright` is not installed (it is in the `test` extra)")
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if path is None:
        problems.append("`chromium` is missing (Debian package `chromium`; scripts/test.sh installs it as root)")
    if problems:
        reason = "browser test not run: " + "; ".join(problems)
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- CI=true requires it")
        pytest.skip(reason)
    return path  # type: ignore[return-value]


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A plain static file server on another port of 127.0.0.1: the other user's site."""
    root = tmp_path / "elsewhere"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *_args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _dashboard_link(server: Server) -> str:
    """The link `juqueue serve` printed; `juqueue url` must print the same one."""
    printed = re.findall(r"Dashboard: (\S+)", server.log.read_text())
    assert printed, server.log.read_text()[-4000:]
    assert server.cli("url").stdout.strip() == printed[-1]
    return printed[-1]


def test_dashboard_works_and_other_ports_cannot_write(workspace, other_origin):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    defs = write_defs(workspace / "defs", CLUSTERS, {"browse.yaml": BROWSE})
    server = Server(defs, workspace / "work").start()
    try:
        server.wait_for(lambda runs: len(runs) == 2 and all(r["status"] == "running" for r in runs), 90, "2 running")
        link = _dashboard_link(server)
        assert link == f"{server.url}/?token={server.token}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, timeout=60_000)
            try:
                context = browser.new_context()
                context.set_default_timeout(30_000)
                page = context.new_page()

                # The dashboard: the link sets the cookie and redirects; the page shows the runs.
                page.goto(link)
                assert page.url == server.url + "/"
                cookies = {c["name"]: c for c in context.cookies(server.url)}
                assert cookies[f"juqueue_token_{server.port}"]["sameSite"] == "Strict"
                expect(page.locator("#runs tbody tr")).to_have_count(2)
                expect(page.locator("#runs")).to_contain_text("browse@keep")
                expect(page.locator("#runs")).to_contain_text("browse@victim")
                expect(page.locator("#counts")).to_contain_text("running: 2")
                expect(page.locator("#nodes tbody tr")).to_have_count(1)
                assert page.locator("#message").text_content() == ""

                # Another user's page on another port of the same host, with a new definition
                # waiting in the def dir: a successful reload from it would add a run.
                (defs / "late.yaml").write_text(LATE)
                root, elsewhere = other_origin
                (root / "attack.html").write_text(ATTACK_PAGE % {"target": server.url})
                attacker = context.new_page()
                seen = []
                attacker.on("response", lambda r: seen.append(r) if r.url.startswith(server.url + "/api/") else None)
                attacker.goto(elsewhere + "/attack.html")
                expect(attacker.locator("#done")).to_have_text("sent,sent,sent")
                for _ in range(100):  # fetch resolved; its response event may still be on its way
                    if len(seen) >= 3:
                        break
                    attacker.wait_for_timeout(50)
                assert sorted(r.url.removeprefix(server.url) for r in seen) == ["/api/reload", "/api/runs/cancel", "/api/stop"]
                for response in seen:
                    # 403, not 401: the server saw the right cookie (Chromium sent it, same-site)
                    # from the other origin, and refused the write all the same.
                    assert response.status == 403, (response.url, response.status)

                # Nothing changed: the server runs, the victim runs, the new definition is not loaded.
                assert server.proc is not None and server.proc.poll() is None
                runs = {r["global_id"]: r["status"] for r in server.runs()}
                assert runs == {"browse@keep": "running", "browse@victim": "running"}, runs
                log = server.log.read_text()
                for path in ("/api/reload", "/api/stop", "/api/runs/cancel"):  # the Origin as the server saw it
                    assert f"refused POST {path}: token only in the cookie and Origin '{elsewhere}'" in log, log[-4000:]

                # The dashboard's own writes (same origin, cookie only) still work.
                cancel = page.evaluate("""async () => {
                    const r = await fetch("/api/runs/cancel", {method: "POST",
                        headers: {"Content-Type": "application/json"}, body: JSON.stringify({ids: ["browse@victim"]})});
                    return {status: r.status, body: await r.json()};
                }""")
                assert cancel["status"] == 200 and cancel["body"]["cancelled"] == ["browse@victim"], cancel
                reload = page.evaluate("""async () => {
                    const r = await fetch("/api/reload", {method: "POST"});
                    return {status: r.status, body: await r.json()};
                }""")
                assert reload["status"] == 200, reload
                assert reload["body"]["added"] == ["late@one"], reload
                expect(page.locator("#runs tbody tr")).to_have_count(3)
                expect(page.locator("#runs tbody tr", has_text="browse@victim")).to_contain_text("cancelled")
                expect(page.locator("#runs")).to_contain_text("late@one")
                assert page.locator("#message").text_content() == ""
            finally:
                browser.close()
    finally:
        server.stop()
        assert server.proc is not None and server.proc.poll() is not None
