"""`juqueue watch` against a real `serve` with local nodes: in a pseudo-terminal it follows the
live feed over the server's Unix socket and shows the runs' progress as they complete, and ends
on SIGINT, leaving the terminal as it was; `--until-done` exits 130 on SIGINT, 1 when a run failed and 0 for an
experiment whose runs all completed; `--once` prints one snapshot."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

import pytest

from helpers import Server, write_defs
from support.waiting import wait_until

CLUSTER = """
local:
  type: local
  num_slots: 2
  max_jobs: 1
  idle_timeout: 60
  grace_period: 2
  heartbeat_interval: 1
"""
EXPERIMENTS = {
    "ok.yaml": """
        experiment: ok
        cluster: local
        runs:
          - {id: a, cmd: [sleep, '1'], max_retries: 0}
          - {id: b, cmd: [sleep, '1'], max_retries: 0}
        """,
    "bad.yaml": """
        experiment: bad
        cluster: local
        runs:
          - {id: x, cmd: [sh, -c, 'sleep 1; exit 3'], max_retries: 0}
          - {id: y, cmd: [sleep, '1'], max_retries: 0}
        """,
}


class Terminal:
    """A command in a pseudo-terminal of 60 rows x 120 columns; everything it wrote, read as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 120, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = b""

    def read(self) -> str:
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the command ended and closed its side
                break
            if not chunk:
                break
            self.output += chunk
        return self.output.decode(errors="replace")

    def frame(self) -> str:
        """The latest full-screen frame (each starts by moving the cursor home)."""
        return self.read().rsplit("\x1b[H", 1)[-1]

    def wait_for(self, text: str, timeout: float = 90) -> str:
        wait_until(f"{text!r} on the terminal", lambda: text in self.read(), timeout, 0.2,
                   detail=lambda: self.read()[-3000:])
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self.master)


def _watch(server: Server, *args: str) -> list[str]:
    return [sys.executable, "-m", "juqueue", "watch", *args, "--work-dir", str(server.work_dir)]


@pytest.mark.slow(60)
def test_watch_follows_progress_in_a_terminal_and_until_done_exits_on_the_outcome(workspace):
    defs = write_defs(workspace / "defs", CLUSTER, EXPERIMENTS)
    sock = Path(tempfile.mkdtemp(prefix="jq-watch-", dir="/tmp")) / "api.sock"  # short: socket paths are limited
    server = Server(defs, workspace / "work", "--unix-socket", str(sock), "--hold-new").start()
    term: Terminal | None = None
    try:
        server.wait_for(lambda runs: len(runs) == 4 and all(r["status"] == "held" for r in runs), 60, "4 held runs")
        term = Terminal(_watch(server, "--url", f"unix:{sock}"), server.env)
        screen = term.wait_for("feed: live")
        assert f"at unix:{sock}" in screen and "0/2 0%" in screen and "2 held" in screen

        # Interrupted while it waits, --until-done exits 130: a batch script must not read success.
        waiting = Terminal(_watch(server, "--until-done", "--port", str(server.port)), server.env)
        try:
            waiting.wait_for("feed: live")
            waiting.proc.send_signal(signal.SIGINT)
            assert waiting.proc.wait(20) == 130
        finally:
            waiting.close()

        # Piped, --until-done waits (no live view) and prints the last state once.
        every = subprocess.Popen(_watch(server, "--until-done", "--port", str(server.port)), env=server.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        only_ok = subprocess.Popen(_watch(server, "--until-done", "--experiment", "ok", "--port", str(server.port)),
                                   env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        server.cli("release", "--experiment", "ok")
        server.cli("release", "--experiment", "bad")

        # The view updates from the feed: progress, the runs' events, then every run final.
        term.wait_for("ok@a running on")
        term.wait_for("bad@x failed: exit code 3")
        wait_until("both experiments done on screen", lambda: term.frame().count("2/2 100%") == 2, 90, 0.2,
                   detail=lambda: term.frame())
        term.proc.send_signal(signal.SIGINT)
        assert term.proc.wait(20) == 0
        assert term.read().rstrip().endswith("\x1b[?1049l")  # the full-screen view was left

        out, err = every.communicate(timeout=120)
        assert every.returncode == 1, (out, err)
        assert "1 failed" in out and "Last events" in out
        out, err = only_ok.communicate(timeout=120)
        assert only_ok.returncode == 0, (out, err)
        assert "Runs of ok: 2 completed" in out

        polled = server.cli("watch", "-n", "0.5", "--until-done", "--experiment", "bad", check=False)  # no feed
        assert polled.returncode == 1 and "every 0.5 s" in polled.stdout, (polled.stdout, polled.stderr)
        once = server.cli("watch", "--once", "--events", "20")
        assert "bad@x failed: exit code 3" in once.stdout and "ok@b completed" in once.stdout
        unknown = server.cli("watch", "--once", "--experiment", "nope", check=False)
        assert unknown.returncode == 2 and "no experiment named 'nope' (known: bad, ok)" in unknown.stderr
    finally:
        if term is not None:
            term.close()
        server.stop()

