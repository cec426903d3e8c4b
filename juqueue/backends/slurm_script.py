"""Render the job script of one SLURM node from its cluster definition (pure).

`juqueue slurm-script CLUSTER` prints exactly this, so a user can check what will be
submitted before spending node hours. Every value from the definition is shell-quoted and
control characters are refused: sbatch reads directives line by line, so a newline in a
value would smuggle in a directive or a command.
"""

from __future__ import annotations

import re
import shlex
import string
from importlib import resources
from pathlib import Path

from juqueue.definitions.models import ClusterSpec
from juqueue.errors import ConfigError
from juqueue.paths import WorkDir

TEMPLATE_PACKAGE = "juqueue.workers"
TEMPLATE_NAME = "slurm_job.sh"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _JobTemplate(string.Template):
    # "$" is bash's; placeholders in the template are written @{name}
    delimiter = "@"


def job_name_for(cluster: ClusterSpec, node: str, token: str) -> str:
    """The SLURM job name: the prefix lets one squeue call find JuQueue's jobs, the token
    lets a restarted controller recognise exactly its own."""
    return f"{cluster.job_name}-{node}-{token}"


def job_comment_for(token: str) -> str:
    return f"juqueue:{token}"


def load_template() -> str:
    return resources.files(TEMPLATE_PACKAGE).joinpath("templates", TEMPLATE_NAME).read_text()


def _no_nul(field: str, value: str) -> str:
    # the body is not parsed for directives (sbatch stops at the first command), so
    # newlines are fine there; NUL is not
    if "\x00" in value:
        raise ConfigError(f"{field}: NUL characters are not allowed: {value!r}")
    return value


def _safe(field: str, value: object) -> str:
    text = str(value)
    if _CONTROL.search(text):
        raise ConfigError(f"{field}: control characters (newline, tab, ...) are not allowed: {text!r}")
    return text


def _q(field: str, value: object) -> str:
    return shlex.quote(_safe(field, value))


def _directive(option: str, field: str, value: object) -> str:
    return f"#SBATCH --{option}={_q(field, value)}"


def _extra_directive(line: str) -> str:
    text = _safe("extra_directives", line).strip()
    return text if text.startswith("#SBATCH") else f"#SBATCH {text}"


def render_directives(cluster: ClusterSpec, *, node: str, token: str, log_path: Path) -> list[str]:
    """The #SBATCH lines, in a stable order (extra directives last, so they can override)."""
    lines = [
        _directive("job-name", "job_name", job_name_for(cluster, node, token)),
        _directive("comment", "token", job_comment_for(token)),
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
    ]
    optional = [
        ("partition", "partition", cluster.partition),
        ("account", "account", cluster.account),
        ("qos", "qos", cluster.qos),
        ("time", "time", cluster.time),
        ("cpus-per-task", "cpus_per_task", cluster.cpus_per_task),
        ("mem", "memory", cluster.memory),
        ("gres", "gres", cluster.gres),
        ("constraint", "constraint", cluster.constraint),
    ]
    lines += [_directive(opt, field, value) for opt, field, value in optional if value not in (None, "")]
    if cluster.exclusive:
        lines.append("#SBATCH --exclusive")
    lines += [
        _directive("output", "log_path", log_path),
        "#SBATCH --open-mode=append",
        f"#SBATCH --signal=B:USR1@{int(cluster.signal_lead)}",
    ]
    lines += [_extra_directive(line) for line in cluster.extra_directives]
    return lines


def _env_exports(env: dict[str, str]) -> str:
    lines = []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ConfigError(f"env: {name!r} is not a valid environment variable name")
        lines.append(f"export {name}={shlex.quote(_no_nul('env.' + name, value))}")
    return "\n".join(lines)


def render_job_script(
    cluster: ClusterSpec,
    *,
    node: str,
    token: str,
    work_dir: Path,
    log_path: Path,
    python: str | None = None,
) -> str:
    """The complete job script for one node of `cluster`."""
    interpreter = cluster.python or python or "python3"
    drain_file = WorkDir(Path(work_dir)).node_dir(node) / "drain"
    for line in cluster.prologue:
        _no_nul("prologue", line)
    values = {
        "directives": "\n".join(render_directives(cluster, node=node, token=token, log_path=log_path)),
        "prologue": "\n".join(cluster.prologue),
        "env_exports": _env_exports(cluster.env),
        "work_dir": _q("work_dir", work_dir),
        "node": _q("node", node),
        "token": _q("token", token),
        "python": _q("python", interpreter),
        "drain_file": _q("drain_file", drain_file),
        "cluster": _q("name", cluster.name),
    }
    return _JobTemplate(load_template()).substitute(values)
