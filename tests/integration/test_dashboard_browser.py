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

from helpers import Server, kill_leftovers, write_defs
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


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (Playwright's sync API allows one instance per thread)."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, headless=True, timeout=60_000)
        try:
            yield instance
        finally:
            instance.close()


def test_dashboard_works_and_other_ports_cannot_write(workspace, other_origin, browser):
    from playwright.sync_api import expect

    defs = write_defs(workspace / "defs", CLUSTERS, {"browse.yaml": BROWSE})
    server = Server(defs, workspace / "work").start()
    try:
        server.wait_for(lambda runs: len(runs) == 2 and all(r["status"] == "running" for r in runs), 90, "2 running")
        link = _dashboard_link(server)
        assert link == f"{server.url}/?token={server.token}"
        try:
            context = browser.new_context()
            context.set_default_timeout(30_000)
            page = context.new_page()

            # The dashboard: the link sets the cookie and redirects; the page shows the runs.
            page.goto(link)
            assert page.url == server.url + "/"
            cookies = {c["name"]: c for c in context.cookies(server.url)}
            assert cookies[f"juqueue_token_{server.port}"]["sameSite"] == "Strict"
            expect(page.locator("#counts")).to_contain_text("running: 2")
            expect(page.locator("#clusters")).to_contain_text("1 / 1")  # nodes live / target
            page.goto(server.url + "/#/runs")
            expect(page.locator("#runs tbody tr")).to_have_count(2)
            expect(page.locator("#runs")).to_contain_text("browse@keep")
            expect(page.locator("#runs")).to_contain_text("browse@victim")
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

            # The reload button first shows what a reload would do (nothing applied yet), then reloads.
            (defs / "browse.yaml").write_text(BROWSE.replace("{id: keep, cmd: [\"sleep\", \"300\"]}",
                                                             "{id: keep, cmd: [\"sleep\", \"301\"]}"))
            page.goto(server.url + "/")
            page.get_by_role("button", name="Reload definitions").click()
            expect(page.locator("#confirm-text")).to_have_text(
                "Reload definitions: 1 added, 1 updated, 0 undefined; 1 live run would stop. Reload?")
            expect(page.locator("#confirm-detail")).to_contain_text("browse@keep")
            expect(page.locator("#confirm-detail")).to_contain_text("late@one")
            assert sorted(r["global_id"] for r in server.runs()) == ["browse@keep", "browse@victim"]  # not applied
            page.get_by_role("button", name="Confirm").click()
            expect(page.locator(".answer")).to_contain_text("Reloaded: 1 added, 1 updated, 0 undefined, 1 stopped.")
            page.goto(server.url + "/#/runs")
            expect(page.locator("#runs tbody tr")).to_have_count(3)
            expect(page.locator("#runs tbody tr", has_text="browse@victim")).to_contain_text("cancelled")
            expect(page.locator("#runs")).to_contain_text("late@one")
            assert page.locator("#message").text_content() == ""
        finally:
            context.close()
    finally:
        server.stop()
        assert server.proc is not None and server.proc.poll() is not None


# ---------------------------------------------------------------- the pages, on one shared server
#
# One server (one local node of 8 slots) and one browser for the tests below: each test opens
# its own browser context (the dashboard link sets the cookie) and acts on runs of its own.

PAGES_CLUSTERS = """
local:
  type: local
  num_slots: 8
  max_jobs: 1
  idle_timeout: 300
"""

XSS = "<img src=x onerror=alert(1)>"

PAGES_DEFS = {
    "browse.yaml": """
        experiment: browse
        cluster: local
        runs:
          - {id: keep, cmd: [sleep, '300']}
          - {id: victim, cmd: [sleep, '300']}
          - {id: keyboard, cmd: [sleep, '300']}
          - {id: gate, cmd: [sleep, '300'], hold: true}
        """,
    "chatty.yaml": """
        experiment: chatty
        cluster: local
        runs:
          - {id: talker, cmd: [sh, -c, 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.3; done']}
        """,
    "flaky.yaml": """
        experiment: flaky
        cluster: local
        runs:
          - {id: f1, cmd: [sh, -c, 'echo broken >&2; exit 3']}
          - {id: f2, cmd: [sh, -c, 'echo broken >&2; exit 3']}
          - {id: f3, cmd: [sh, -c, 'echo broken >&2; exit 3']}
        """,
    "xss.yaml": f"""
        experiment: "{XSS}"
        cluster: local
        runs:
          - {{id: "{XSS}", cmd: ['true']}}
        """,
}

PAGE_ROUTES = {"overview": "/", "runs": "/#/runs", "run": "/#/run/browse%40keep", "nodes": "/#/nodes", "usage": "/#/usage"}


@pytest.fixture(scope="module")
def live(tmp_path_factory, browser):
    """The shared server, once every long run is running and every flaky run has failed."""
    root = tmp_path_factory.mktemp("dashboard")
    defs = write_defs(root / "defs", PAGES_CLUSTERS, PAGES_DEFS)
    server = Server(defs, root / "work").start(tick=0.5)
    try:
        def ready(runs):
            by = {r["global_id"]: r["status"] for r in runs}
            return all(by.get(g) == "running" for g in ("browse@keep", "browse@victim", "browse@keyboard", "chatty@talker")) \
                and all(by.get(f"flaky@f{i}") == "failed" for i in (1, 2, 3)) and by.get(f"{XSS}@{XSS}") == "completed"
        server.wait_for(ready, 120, "the long runs running, the flaky ones failed")
        yield server, browser, root
    finally:
        server.stop()
        kill_leftovers(root / "work")


def _open(live, path: str = "/", width: int = 1280):
    """A fresh context signed in through the dashboard link, on `path`; dialogs are recorded."""
    server, browser, _root = live
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    page.goto(f"{server.url}/?token={server.token}")
    if path != "/":
        page.goto(server.url + path)
    return context, page


def _shot(live, page, name: str) -> Path:
    path = live[2] / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot of the {name} page: {path}")
    return path


@pytest.mark.slow(40)
def test_overview_shows_clusters_experiments_and_counts(live):
    from playwright.sync_api import expect

    context, page = _open(live)
    try:
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator("#clusters")).to_contain_text("local")
        expect(page.locator("#clusters")).to_contain_text("nodes live / target")
        expect(page.locator('#experiments tr[data-experiment="browse"]')).to_contain_text("running 3")
        expect(page.locator('#experiments tr[data-experiment="flaky"]')).to_contain_text("of 3")
        expect(page.get_by_role("button", name="Reload definitions")).to_be_visible()
        expect(page.get_by_role("link", name="API docs")).to_have_attribute("href", "docs")
        assert page.locator("#message").text_content() == ""
        _shot(live, page, "overview")
    finally:
        context.close()


def test_a_status_changes_without_a_reload(live):
    from playwright.sync_api import expect

    server = live[0]
    context, page = _open(live, "/#/runs?q=gate")
    try:
        row = page.locator('#runs tr[data-gid="browse@gate"]')
        expect(row).to_contain_text("held")
        page.evaluate("window.__same_document = true")
        resp = server.api("POST", "/api/runs/release", json={"ids": ["browse@gate"]})
        assert resp.json()["released"] == ["browse@gate"], resp.text
        expect(row).to_contain_text("running")  # from the live feed: the page was not loaded again
        assert page.evaluate("window.__same_document") is True
    finally:
        context.close()


def test_cancel_a_run_with_its_button(live):
    from playwright.sync_api import expect

    server = live[0]
    context, page = _open(live, "/#/run/browse%40victim")
    try:
        expect(page.locator("#run-status")).to_have_text("running")
        expect(page.locator("#command")).to_have_text("sleep 300")
        page.get_by_role("button", name="Cancel", exact=True).click()
        expect(page.locator("#confirm-text")).to_have_text("Cancel 1 run (browse@victim)?")
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator("#run-status")).to_have_text("cancelled")
        assert server.run("browse@victim")["status"] == "cancelled"
        _shot(live, page, "run")
    finally:
        context.close()


def test_failed_runs_selected_by_status_are_requeued_in_bulk_and_run_again(live):
    from playwright.sync_api import expect

    server = live[0]
    context, page = _open(live, "/#/runs")
    try:
        page.get_by_role("checkbox", name="failed", exact=True).check()
        expect(page.locator("#runs tbody tr")).to_have_count(3)
        page.get_by_role("button", name="Select all 3 matching").click()
        page.get_by_role("button", name="Requeue", exact=True).click()
        expect(page.locator("#confirm-text")).to_have_text("Requeue 3 runs?")
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator(".answer")).to_contain_text("Requeue: 3 runs requeued.")
        _shot(live, page, "runs")
    finally:
        context.close()
    server.wait_for(lambda runs: all(r["attempt"] == 2 and r["status"] == "failed"
                                     for r in runs if r["experiment"] == "flaky"), 60, "the flaky runs ran again")


def test_the_log_tail_of_a_running_run_grows(live):
    context, page = _open(live, "/#/run/chatty%40talker")
    try:
        page.wait_for_function("(document.querySelector('#log-out')?.textContent || '').includes('line ')")
        before = page.evaluate("document.querySelector('#log-out').textContent.length")
        page.wait_for_function(f"document.querySelector('#log-out').textContent.length > {before}")
    finally:
        context.close()


def test_the_node_grid_shows_a_run_in_its_slot(live):
    from playwright.sync_api import expect

    context, page = _open(live, "/#/nodes")
    try:
        slot = page.locator('.node .slot[data-run="browse@keep"]')
        expect(slot).to_have_count(1)
        expect(slot.get_by_role("link", name="browse@keep")).to_be_visible()
        expect(page.locator(".node").first.get_by_role("button", name="Drain")).to_be_visible()
        expect(page.locator(".node").first.get_by_role("button", name="Stop node")).to_be_visible()
        _shot(live, page, "nodes")
    finally:
        context.close()


def test_the_usage_chart_draws(live):
    from playwright.sync_api import expect

    context, page = _open(live, "/#/usage")
    try:
        chart = page.locator('section.chart[aria-label="usage of cluster local"]')
        expect(chart.locator("canvas")).to_have_count(2)  # slots held vs busy; efficiency
        assert int(chart.get_attribute("data-points") or 0) >= 2
        # the slots chart drew something: some pixel of its canvas is not blank
        drawn = chart.locator("canvas").first.evaluate(
            "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0)")
        assert drawn
        expect(page.get_by_role("link", name="Download the series as CSV")).to_be_visible()
        _shot(live, page, "usage")
    finally:
        context.close()


def test_tab_reaches_cancel_and_enter_triggers_it(live):
    server = live[0]
    context, page = _open(live, "/#/run/browse%40keyboard")
    try:
        page.locator("#run-status").filter(has_text="running").wait_for()
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.tagName === 'BUTTON' && document.activeElement.textContent === 'Cancel'"):
                break
        else:
            raise AssertionError("Tab never reached the Cancel button")
        page.keyboard.press("Enter")
        page.locator("#confirm[open]").wait_for()
        page.keyboard.press("Enter")  # the dialog's Confirm has the focus
        page.locator("#run-status").filter(has_text="cancelled").wait_for()
        assert server.run("browse@keyboard")["status"] == "cancelled"
    finally:
        context.close()


def test_every_page_fits_1280_px_and_works_with_other_hosts_blocked(live):
    from playwright.sync_api import expect

    server = live[0]
    context, page = _open(live)
    blocked = []
    own = server.url + "/"

    def gate(route):
        if route.request.url.startswith(own) or route.request.url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()
    context.route("**/*", gate)
    try:
        for name, path in PAGE_ROUTES.items():
            page.goto(server.url + path)
            page.reload()  # every script and style fetched again, under the block
            expect(page.locator("main h1")).to_be_visible()
            page.wait_for_load_state("networkidle")
            assert page.locator("#message").text_content() == "", (name, page.locator("#message").text_content())
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, (name, width)
        assert blocked == [], blocked
    finally:
        context.close()


def test_user_strings_render_as_text(live):
    from playwright.sync_api import expect

    gid = f"{XSS}@{XSS}"
    context, page = _open(live)
    try:
        expect(page.locator("#experiments")).to_contain_text(XSS)
        from urllib.parse import quote
        page.goto(live[0].url + "/#/runs?experiment=" + quote(XSS, safe=""))
        expect(page.locator("#runs tbody")).to_contain_text(gid)
        page.get_by_role("link", name=gid).click()
        expect(page.locator("#run-id")).to_have_text(gid)
        expect(page.locator("#run-status")).to_have_text("completed")
        page.goto(live[0].url + "/#/usage")
        expect(page.locator("#experiment-hours")).to_contain_text(XSS)
        assert page.locator("main img").count() == 0
        assert page.dialogs == []  # type: ignore[attr-defined]
    finally:
        context.close()
