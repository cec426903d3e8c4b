"""The worker inside a SLURM job reaches the broker through a non-loopback address.

On the test machine the hostname resolves to loopback, and test traffic may only go to
loopback or to hosts the test makes itself. So the test makes one: a network namespace
with a veth pair (10.231.X.1 on the host side, 10.231.X.2 inside), serves with
`--broker-host 10.231.X.1`, and makes the cluster's `python:` a wrapper that runs the
worker with `ip netns exec`. `ss` then shows the worker's connection, and the broker's
password appears neither in any process's arguments nor in `scontrol show job`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import uuid

import pytest

from helpers import Server, write_defs
from slurm_helpers import (
    all_node_files,
    nodes,
    require_slurm,
    run_dir_of,
    slurm_jobs,  # noqa: F401  (fixture)
)
from support.slurm import live_jobs, slurm_cluster
from support.waiting import wait_until
from juqueue.paths import WorkDir

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


def _skip_or_fail(reason: str) -> None:
    reason = f"SLURM network-namespace test NOT RUN: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " -- CI=true requires it")
    pytest.skip(reason)


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@pytest.fixture
def netns():
    """A network namespace joined to the host by a veth pair: (namespace, host address, namespace address)."""
    require_slurm()
    if os.geteuid() != 0:
        _skip_or_fail("needs root to create a network namespace")
    if shutil.which("ip") is None or shutil.which("ss") is None:
        _skip_or_fail("`ip` or `ss` (iproute2) is not installed")
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"jq{tag}", f"vh{tag}", f"vn{tag}"
    used = _sh("ip", "-4", "-o", "addr").stdout
    subnet = next((x for x in random.sample(range(1, 255), 254) if f"10.231.{x}." not in used), None)
    assert subnet is not None, "no free 10.231.X.0/30 subnet"
    host_ip, ns_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    probe = _sh("ip", "netns", "add", ns, check=False)
    if probe.returncode != 0:
        _skip_or_fail(f"`ip netns add` is unavailable here: {probe.stderr.strip()}")
    try:
        _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _sh("ip", "link", "set", ns_if, "netns", ns)
        _sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _sh("ip", "link", "set", host_if, "up")
        _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, host_ip, ns_ip
    finally:
        _sh("ip", "netns", "del", ns, check=False)  # takes the namespace's end of the pair with it
        _sh("ip", "link", "del", host_if, check=False)  # gone already when the pair went with the namespace
        assert ns not in _sh("ip", "netns", "list", check=False).stdout
        assert host_if not in _sh("ip", "-o", "link", check=False).stdout


def test_worker_reaches_broker_through_a_network_namespace(workspace, slurm_jobs, netns):
    ns, host_ip, ns_ip = netns
    wrapper = workspace / "netns-python"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    # the run records the addresses it sees (it runs inside the namespace with its worker),
    # then holds its slot until the test has looked at the connection
    hold = ('ip -o -4 addr show > "$JUQUEUE_RUN_DIR/addrs"; i=0; '
            'while [ ! -e "$JUQUEUE_RUN_DIR/go" ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i+1)); done; echo released')
    defs = write_defs(workspace / "defs", slurm_cluster("c", job_name=slurm_jobs, python=str(wrapper)),
                      {"net.yaml": f"experiment: net\ncluster: c\nruns:\n  - {{id: hold, cmd: {json.dumps(['sh', '-c', hold])}}}\n"})
    work = workspace / "work"
    server = Server(defs, work, "--broker-host", host_ip).start()
    gid = "net@hold"

    def detail() -> str:
        return f"{all_node_files(work)}\nserve log:\n{server.log.read_text()[-3000:]}"
    try:
        running = wait_until("the run running", lambda: (lambda r: r if r["status"] == "running" else None)(server.run(gid)),
                             120, detail=detail)
        broker = json.loads((WorkDir(work).broker_dir / "broker.json").read_text())
        port, password = int(broker["port"]), broker["password"]
        assert password and len(password) >= 16, "the broker must have a real password"

        # the run (and so its worker) is inside the namespace: it sees only the namespace's address
        addrs = wait_until("the run's address list", lambda: (run_dir_of(work, gid) / "addrs").exists()
                           and (run_dir_of(work, gid) / "addrs").read_text(), 30, detail=detail)
        assert ns_ip in addrs and host_ip not in addrs, addrs

        # an established TCP connection from 10.231.X.2 to 10.231.X.1:<broker port>, seen from the host ...
        def host_side():
            out = _sh("ss", "-tnp", "state", "established").stdout
            hits = [line for line in out.splitlines() if f"{host_ip}:{port}" in line and f"{ns_ip}:" in line]
            return hits
        hits = wait_until(f"a connection {ns_ip} -> {host_ip}:{port} in ss", host_side, 30,
                          detail=lambda: _sh("ss", "-tnp").stdout)
        # ... and from inside the namespace, owned by the worker's python
        inside = _sh("ip", "netns", "exec", ns, "ss", "-tnp", "state", "established").stdout
        worker_conns = [line for line in inside.splitlines() if f"{ns_ip}:" in line and f"{host_ip}:{port}" in line]
        assert worker_conns and any("python" in line for line in worker_conns), inside
        # nothing of the node talks to the broker over loopback
        assert not [line for line in inside.splitlines() if f"127.0.0.1:{port}" in line], inside

        # the password is in no process's arguments ...
        ps = _sh("ps", "-eo", "args").stdout
        assert password not in ps, "broker password in a process's arguments"
        # ... nor in what SLURM shows other users of the node's job
        node = next(n for n in nodes(server) if n["name"] == running["node"])
        job_id = node["job_id"]
        assert job_id and any(j[0] == job_id for j in live_jobs(slurm_jobs)), node
        shown = _sh("scontrol", "show", "job", job_id).stdout
        assert job_id in shown and password not in shown, "broker password in scontrol show job"
        assert password not in (WorkDir(work).node_dir(running["node"]) / "job.sh").read_text()

        (run_dir_of(work, gid) / "go").touch()
        final = wait_until("the run to end", lambda: (lambda r: r if r["status"] in ("completed", "failed", "cancelled") else None)(server.run(gid)),
                           60, detail=detail)
    finally:
        server.stop()
    assert final["status"] == "completed" and final["exit_code"] == 0 and final["attempt"] == 1, final
    out = (run_dir_of(work, gid) / "logs" / "attempt-1.out").read_text()
    assert "released" in out, out
    print(f"broker connection seen: {hits}")
