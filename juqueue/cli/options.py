"""The CLI's shared option sets, each declared once (the command modules of juqueue.cli use them).

Two sets recur: the server's options, taken by `serve` and by the bare root command (the
original JuQueue's `juqueue --def-dir D --work-dir W` serves), and the four options every
client command takes to find the server. Each set is a dataclass whose fields are the
options. A command asks for a set with one keyword-only parameter of that type;
`with_option_groups` spreads the fields into the signature typer reads, at that place, and
hands the command one instance, so every command shows the same flags, defaults and help.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar, get_type_hints

import typer

SERVER = "Finding the server"
UrlOpt = Annotated[Optional[str], typer.Option("--url", help="Server address (http://host:port or unix:/path/of/socket). Else JUQUEUE_URL, the work dir's server.json, the registry, http://127.0.0.1:51234.", rich_help_panel=SERVER)]
PortOpt = Annotated[Optional[int], typer.Option("--port", help="Short for --url http://127.0.0.1:PORT.", rich_help_panel=SERVER)]
WorkDirOpt = Annotated[Optional[Path], typer.Option("--work-dir", help="Work dir whose server.json and token to use (else JUQUEUE_WORK_DIR, else the nearest one above the current directory).", rich_help_panel=SERVER)]
TokenOpt = Annotated[Optional[str], typer.Option("--token", help="API token (else JUQUEUE_TOKEN, else the work dir's token file). Others can read command lines: prefer the file.", rich_help_panel=SERVER)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of tables.")]

DefDirOpt = Annotated[Optional[Path], typer.Option("--def-dir", help="Definition dir: clusters.yaml, experiments/*.py, *.yaml.")]
ServeWorkDirOpt = Annotated[Optional[Path], typer.Option("--work-dir", help="Work dir (logs, store, token); must be shared with compute nodes.")]
BrokerOpt = Annotated[Optional[str], typer.Option("--broker", help="Redis URL; default: start the embedded broker.")]
DbUrlOpt = Annotated[Optional[str], typer.Option("--db-url", help="Store URL (PostgreSQL); default: SQLite in the work dir.")]
HostOpt = Annotated[str, typer.Option("--host", help="Address the API listens on.")]
ServePortOpt = Annotated[Optional[int], typer.Option("--port", help="API port; default 51234, or a free port when that is taken; -1: no API (stop with SIGTERM/SIGINT).")]
UnixSocketOpt = Annotated[Optional[Path], typer.Option("--unix-socket", help="Serve the API on this Unix socket (mode 0600: you only); TCP too only with an explicit --port.")]
BrokerHostOpt = Annotated[Optional[str], typer.Option("--broker-host", help="Address the embedded broker listens on when SLURM clusters exist (default: the hostname's address).")]
TickOpt = Annotated[float, typer.Option("--tick-interval", help="Seconds between the controller's periodic reconciles.")]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="Server log level.")]
FlowerPortOpt = Annotated[int | None, typer.Option("--flower-port", help="Also run Flower (the Celery monitor) on this port, behind the dashboard token as its password.")]
HoldNewOpt = Annotated[bool, typer.Option("--hold-new", help="Every run that appears (first load or reload) is held until `juqueue release` or `resume`.")]

TIMINGS = "Timings (seconds; else JUQUEUE_* variables, else the defaults)"


def _timing(flag: str, help_text: str) -> Any:
    return Annotated[Optional[float], typer.Option(flag, help=help_text, rich_help_panel=TIMINGS)]


LeaseTtlOpt = _timing("--lease-ttl", "A worker that cannot renew its runs' leases this long kills them (JUQUEUE_LEASE_TTL; 120).")
StartTimeoutOpt = _timing("--start-timeout", "A started local node that never heartbeats is given up (JUQUEUE_START_TIMEOUT; 120).")
StopEscalateOpt = _timing("--stop-escalate", "A node that has not stopped this long after being asked is ended (JUQUEUE_STOP_ESCALATE; 60).")
ControllerSilenceOpt = _timing("--controller-silence", "Workers end their node after this long without the controller (JUQUEUE_CONTROLLER_SILENCE; 600).")
EvalTimeoutOpt = _timing("--eval-timeout", "Evaluating the definition files is stopped after this long (JUQUEUE_EVAL_TIMEOUT; 60).")
HeartbeatIntervalOpt = _timing("--heartbeat-interval", "Heartbeat interval of clusters that do not set heartbeat_interval (JUQUEUE_HEARTBEAT_INTERVAL; 5).")
BrokerGraceOpt = _timing("--broker-grace", "The embedded broker, with no server and no live job this long, shuts down, its AOF kept (JUQUEUE_BROKER_GRACE; 300).")
HeartbeatTimeoutOpt = _timing("--heartbeat-timeout", "A node silent this long is lost, for clusters that do not set heartbeat_timeout (JUQUEUE_HEARTBEAT_TIMEOUT; 30).")


@dataclass(frozen=True)
class Connection:
    """How a client command finds the server and its token (juqueue.client resolves them)."""

    url: UrlOpt = None
    port: PortOpt = None
    work_dir: WorkDirOpt = None
    token: TokenOpt = None


@dataclass(frozen=True)
class ServeArgs:
    """The server's flags as given; juqueue.serve.ServeOptions is what the server gets
    (both directories required and resolved)."""

    def_dir: DefDirOpt = None
    work_dir: ServeWorkDirOpt = None
    broker: BrokerOpt = None
    db_url: DbUrlOpt = None
    host: HostOpt = "127.0.0.1"
    port: ServePortOpt = None
    unix_socket: UnixSocketOpt = None
    broker_host: BrokerHostOpt = None
    tick_interval: TickOpt = 2.0
    log_level: LogLevelOpt = "INFO"
    flower_port: FlowerPortOpt = None
    hold_new: HoldNewOpt = False
    lease_ttl: LeaseTtlOpt = None
    start_timeout: StartTimeoutOpt = None
    stop_escalate: StopEscalateOpt = None
    controller_silence: ControllerSilenceOpt = None
    eval_timeout: EvalTimeoutOpt = None
    heartbeat_interval: HeartbeatIntervalOpt = None
    heartbeat_timeout: HeartbeatTimeoutOpt = None
    broker_grace: BrokerGraceOpt = None

    def timings(self) -> dict[str, float | None]:
        """The timing flags by `juqueue.settings.Settings` field (None: not given)."""
        return {"lease_ttl_s": self.lease_ttl, "start_timeout_s": self.start_timeout,
                "stop_escalate_s": self.stop_escalate, "controller_silence_s": self.controller_silence,
                "eval_timeout_s": self.eval_timeout, "heartbeat_interval_s": self.heartbeat_interval,
                "heartbeat_timeout_s": self.heartbeat_timeout, "broker_grace_s": self.broker_grace}


OPTION_GROUPS: tuple[type, ...] = (Connection, ServeArgs)

F = TypeVar("F", bound=Callable[..., Any])


def _group_parameters(group: type, like: inspect.Parameter) -> list[inspect.Parameter]:
    """One typer parameter per field (its option declaration and default), of `like`'s kind."""
    hints = get_type_hints(group, include_extras=True)
    return [inspect.Parameter(f.name, like.kind, default=f.default, annotation=hints[f.name])
            for f in dataclasses.fields(group)]


def with_option_groups(func: F) -> F:
    """Let a command take an option set as one parameter (`*, conn: Connection`).

    Typer reads the command's signature; this one shows the set's fields in place of the
    parameter, and the call gathers them back into one instance. Apply it below
    `@app.command()`.
    """
    signature = inspect.signature(func, eval_str=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, type] = {}
    for param in signature.parameters.values():
        if param.annotation in OPTION_GROUPS:
            groups[param.name] = param.annotation
            params.extend(_group_parameters(param.annotation, param))
        else:
            params.append(param)
    if not groups:
        raise TypeError(f"{func.__name__} takes no option group ({', '.join(g.__name__ for g in OPTION_GROUPS)})")
    fields = {name: [f.name for f in dataclasses.fields(group)] for name, group in groups.items()}

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, group in groups.items():
            kwargs[name] = group(**{field: kwargs.pop(field) for field in fields[name] if field in kwargs})
        return func(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
    return wrapper  # type: ignore[return-value]
