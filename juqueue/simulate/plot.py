"""`--plot FILE.png`: nodes held and slots busy over time, one panel per policy (matplotlib,
the optional extra `.[plot]`)."""

from __future__ import annotations

from pathlib import Path

from juqueue.simulate.distributions import SimulationInputError
from juqueue.simulate.state import PolicyResult

MISSING = "--plot needs matplotlib, which is not installed: pip install 'juqueue[plot]' (or pip install matplotlib)"


def require_matplotlib() -> None:
    """Fail before simulating, not after."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SimulationInputError(MISSING) from None


def plot_series(results: list[PolicyResult], num_slots: int, path: Path, title: str = "") -> None:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 2.2 * len(results) + 0.6), sharex=True, squeeze=False)
    hours_max = max((r.series[-1][0] for r in results if r.series), default=0.0) / 3600
    for ax, r in zip(axes[:, 0], results):
        t = [p[0] / 3600 for p in r.series] + [hours_max]
        held = [p[1] for p in r.series]
        busy = [p[2] / num_slots for p in r.series]
        if r.series:
            ax.step(t, held + held[-1:], where="post", label="nodes held", color="tab:blue")
            ax.step(t, busy + busy[-1:], where="post", label=f"slots busy / {num_slots}", color="tab:orange")
            ax.fill_between(t, busy + busy[-1:], held + held[-1:], step="post", color="tab:blue", alpha=0.15)
        ax.set_ylabel("nodes")
        ax.set_title(f"{r.name}: {r.node_seconds / 3600:.1f} node-hours", fontsize=9, loc="left")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("hours")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise SimulationInputError(f"--plot {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
