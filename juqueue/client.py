"""Finding a JuQueue server and its token, and talking to it.

First match wins. The server: --url or --port, JUQUEUE_URL, the work dir's server.json, the
per-user registry when exactly one of the user's servers runs, http://127.0.0.1:51234. An
address is `http://host:port` or, for a server on a Unix socket (`serve --unix-socket`),
`unix:/path/of/the/socket`; both are found, recorded and used the same way. The
token: --token, JUQUEUE_TOKEN, the `token` file of the work dirs behind that address. The
finding functions take their inputs explicitly (options, environment, cwd, registry, a pid
check) so the order can be tested without a server; `ApiClient` is a thin httpx wrapper that
turns "nobody answered" and "token rejected" into exceptions the CLI prints as one line.
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import httpx

from juqueue.paths import WorkDir, read_json, write_json_atomic
from juqueue.processes import pid_alive

DEFAULT_URL = "http://127.0.0.1:51234"
UNIX_PREFIX = "unix:"  # an address `unix:/path` is the API on that Unix socket
ENV_URL, ENV_TOKEN, ENV_WORK_DIR = "JUQUEUE_URL", "JUQUEUE_TOKEN", "JUQUEUE_WORK_DIR"
PAGE_SIZE = 1000  # items per request when paging through a list (the runs list's maximum)
TOTAL_HEADER = "X-Total-Count"


# ---------------------------------------------------------------------- registry
def registry_path(home: Path | None = None) -> Path:
    """The per-user registry of running servers, `~/.juqueue/servers.json`."""
    return (home or Path.home()) / ".juqueue" / "servers.json"


def load_registry(path: Path) -> dict[str, dict]:
    data = read_json(path)
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def live_registry_entries(registry: Mapping[str, dict], alive: Callable[[int | None], bool],
                          hostname: str | None = None) -> dict[str, dict]:
    """Entries whose server still runs. A home dir shared by several login nodes holds
    entries of other hosts; their pids mean nothing here, so they are skipped."""
    here = hostname or socket.gethostname()
    return {url: e for url, e in registry.items()
            if e.get("hostname", here) == here and alive(e.get("pid"))}


# ---------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class Target:
    """Where the CLI will talk to, how that was found, and where its token may be."""

    url: str
    how: str
    token_dirs: tuple[Path, ...] = field(default=())


def locate_work_dir(work_dir: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """`--work-dir`, then JUQUEUE_WORK_DIR, then the nearest work dir walking up from cwd."""
    if work_dir is not None:
        return Path(work_dir).expanduser().resolve()
    if env.get(ENV_WORK_DIR):
        return Path(env[ENV_WORK_DIR]).expanduser().resolve()
    from juqueue.celery_app import find_work_dir  # imports Celery: only when it is needed

    return find_work_dir(cwd)


def find_server(*, url: str | None, port: int | None, env: Mapping[str, str], work_dir: Path | None,
                registry: Mapping[str, dict], alive: Callable[[int | None], bool] = pid_alive,
                hostname: str | None = None) -> Target:
    """First match wins: --url/--port, JUQUEUE_URL, the work dir's server.json, the registry
    when exactly one of this user's servers runs, else the default address."""
    live = live_registry_entries(registry, alive, hostname)
    only_live = next(iter(live.items())) if len(live) == 1 else None

    def dirs_for(target_url: str) -> tuple[Path, ...]:
        """Token places for an explicit address: the registry entry of that address first."""
        out = [Path(e["work_dir"]) for u, e in registry.items() if _same_url(u, target_url) and e.get("work_dir")]
        if work_dir is not None:
            out.append(work_dir)
        if only_live is not None and only_live[1].get("work_dir"):
            out.append(Path(only_live[1]["work_dir"]))
        return tuple(dict.fromkeys(out))

    if url:
        return Target(url.rstrip("/"), f"--url {url}", dirs_for(url))
    if port:
        u = f"http://127.0.0.1:{port}"
        return Target(u, f"--port {port}", dirs_for(u))
    if env.get(ENV_URL):
        u = env[ENV_URL].rstrip("/")
        return Target(u, f"{ENV_URL}={u}", dirs_for(u))
    if work_dir is not None:
        server_file = WorkDir(work_dir).server_file
        recorded = read_json(server_file)
        if recorded and recorded.get("url"):
            return Target(str(recorded["url"]).rstrip("/"), f"{server_file}", (work_dir,))
        here = hostname or socket.gethostname()
        if recorded and recorded.get("api") is False and recorded.get("hostname", here) == here and alive(recorded.get("pid")):
            # Nothing to talk to: say so rather than reach some other server.
            return Target("", f"the server of work dir {work_dir} (pid {recorded.get('pid')}) runs without an API "
                              f"(serve --port -1): stop it with SIGTERM or SIGINT (kill {recorded.get('pid')})", (work_dir,))
    if only_live is not None:
        u, entry = only_live
        wd = (Path(entry["work_dir"]),) if entry.get("work_dir") else ()
        return Target(u.rstrip("/"), f"the registry {registry_path()} (server of {entry.get('work_dir')})", wd)
    how = "the default address"
    if work_dir is not None:
        how += f" (work dir {work_dir} has no server.json: is `juqueue serve` running?)"
    elif len(live) > 1:
        how += f" ({len(live)} servers in the registry: choose one with --work-dir, --port or --url)"
    # The live server on the default address (several of this user's servers run) still has its token.
    at_default = [Path(e["work_dir"]) for u, e in live.items() if _same_url(u, DEFAULT_URL) and e.get("work_dir")]
    return Target(DEFAULT_URL, how, tuple(dict.fromkeys(([work_dir] if work_dir is not None else []) + at_default)))


def find_token(*, token: str | None, env: Mapping[str, str], target: Target) -> tuple[str | None, str]:
    """--token, JUQUEUE_TOKEN, then the `token` file of the work dirs the target points at."""
    if token:
        return token, "--token"
    if env.get(ENV_TOKEN):
        return env[ENV_TOKEN], ENV_TOKEN
    for wd in target.token_dirs:
        path = WorkDir(wd).token_file
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text, str(path)
    return None, "nowhere (no --token, no JUQUEUE_TOKEN, no work dir token file)"


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


# ---------------------------------------------------------------------- recording (serve)
def record_server(work: WorkDir, url: str | None, port: int | None, host: str, home: Path | None = None,
                  unix_socket: Path | str | None = None) -> None:
    """Write the work dir's server.json and add this server to the per-user registry.

    The address clients use is the Unix socket when there is one (`unix:/path`), else `url`;
    a server without either (`--port -1`) is recorded as `"api": false` and not registered."""
    address = f"{UNIX_PREFIX}{unix_socket}" if unix_socket is not None else url
    me = {"url": address, "http_url": url, "port": port, "unix_socket": str(unix_socket) if unix_socket is not None else None,
          "api": address is not None, "pid": os.getpid(), "host": host, "hostname": socket.gethostname()}
    write_json_atomic(work.server_file, me, mode=0o600)
    if address is None:
        return
    entry = {"work_dir": str(work.root.resolve()), "pid": me["pid"], "port": port, "unix_socket": me["unix_socket"],
             "hostname": me["hostname"]}

    def update(reg: dict[str, dict]) -> None:
        reg[address] = entry

    _update_registry(registry_path(home), update)


def unregister_server(work: WorkDir, home: Path | None = None) -> None:
    """Remove what `record_server` wrote, if it is still this process's."""
    recorded = read_json(work.server_file)
    if recorded and recorded.get("pid") == os.getpid():
        work.server_file.unlink(missing_ok=True)
    root, pid = str(work.root.resolve()), os.getpid()

    def update(reg: dict[str, dict]) -> None:
        for url in [u for u, e in reg.items() if e.get("work_dir") == root and e.get("pid") == pid]:
            del reg[url]

    _update_registry(registry_path(home), update)


def _update_registry(path: Path, update: Callable[[dict[str, dict]], None]) -> None:
    """Read-modify-write under a lock (two servers may start at once); dir 0700, file 0600.
    Entries of this host whose server died are dropped on the way."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with open(path.parent / ".servers.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reg = load_registry(path)
        here = socket.gethostname()
        reg = {u: e for u, e in reg.items() if e.get("hostname", here) != here or pid_alive(e.get("pid"))}
        update(reg)
        write_json_atomic(path, reg, mode=0o600)


# ---------------------------------------------------------------------- HTTP
class ServerUnreachable(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class TokenRejected(Exception):
    """The server answered 401."""


class ApiError(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status_code})")
        self.status_code, self.detail = status_code, detail


class ApiClient:
    """A few JSON calls with timeouts; errors become the three exceptions above."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0, http: httpx.Client | None = None) -> None:
        self.url, self.token = url.rstrip("/"), token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if http is None:
            base_url, transport = self.url, None
            if self.unix_socket is not None:
                base_url, transport = "http://juqueue", httpx.HTTPTransport(uds=self.unix_socket)
            http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout, connect=5.0), transport=transport)
        self._http = http
        self._http.headers.update(headers)

    @property
    def unix_socket(self) -> str | None:
        """The socket's path when the address is `unix:/path`."""
        return self.url[len(UNIX_PREFIX):] if self.url.startswith(UNIX_PREFIX) else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def response(self, method: str, path: str, *, timeout: float | None = None, **kw: Any) -> httpx.Response:
        """The whole answer (headers too: the runs list's total is in `X-Total-Count`)."""
        if timeout is not None:
            kw["timeout"] = httpx.Timeout(timeout, connect=5.0)
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TransportError:
            raise ServerUnreachable(self.url) from None
        if resp.status_code == 401:
            raise TokenRejected(self.url)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _detail(resp))
        return resp

    @contextmanager
    def stream(self, path: str, *, headers: Mapping[str, str] | None = None, read_timeout: float | None = None,
               **params: Any) -> Iterator[httpx.Response]:
        """A GET whose body is read as it comes (the live feed); errors as `response` raises them."""
        timeout = httpx.Timeout(self._http.timeout.connect or 5.0, read=read_timeout)
        try:
            with self._http.stream("GET", path, params=_given(params), headers=dict(headers or {}),
                                   timeout=timeout) as resp:
                if resp.status_code == 401:
                    raise TokenRejected(self.url)
                if resp.status_code >= 400:
                    resp.read()
                    raise ApiError(resp.status_code, _detail(resp))
                yield resp
        except httpx.TransportError:
            raise ServerUnreachable(self.url) from None

    def request(self, method: str, path: str, *, timeout: float | None = None, **kw: Any) -> Any:
        return self.response(method, path, timeout=timeout, **kw).json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_given(params))

    def get_with_headers(self, path: str, **params: Any) -> tuple[Any, httpx.Headers]:
        """The JSON body and the response headers."""
        resp = self.response("GET", path, params=_given(params))
        return resp.json(), resp.headers

    def pages(self, path: str, *, offset: int = 0, limit: int | None = None, page_size: int | None = None,
              **params: Any) -> Iterator[dict]:
        """Every item of a paged list (`offset`/`limit`, the total in `X-Total-Count`) from
        `offset`, at most `limit` of them (None: all), a page at a time."""
        size = page_size or PAGE_SIZE
        while limit is None or limit > 0:
            want = size if limit is None else min(size, limit)
            items, headers = self.get_with_headers(path, offset=offset, limit=want, **params)
            yield from items
            offset += len(items)
            if limit is not None:
                limit -= len(items)
            total = headers.get(TOTAL_HEADER)
            if len(items) < want or (total is not None and offset >= int(total)):
                return

    def post(self, path: str, body: dict | None = None, timeout: float | None = None) -> Any:
        return self.request("POST", path, json=body or {}, timeout=timeout)


def _given(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        return resp.text[:300] or resp.reason_phrase
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    return str(detail)
