"""Distributions of run durations and queue waits, written as one short string.

`fixed:S`, `uniform:lo=S,hi=S`, `lognormal:median=S,sigma=X`, `exp:mean=S`; every S is seconds
(a number, or HH:MM:SS / MM:SS as for a run's `duration`). Parsing fails with one message that
names the flag and quotes the text. Sampling takes the caller's `random.Random`, so a seed
decides everything.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from juqueue.policy.duration import parse_duration


class SimulationInputError(ValueError):
    """Bad simulator input; the message names the culprit (flag, file, line or run)."""


_PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("lo", "hi"),
    "lognormal": ("median", "sigma"),
    "exp": ("mean",),
}
_SECONDS = {"value", "lo", "hi", "median", "mean"}  # sigma is a plain number


@dataclass(frozen=True)
class Distribution:
    kind: str  # fixed, uniform, lognormal, exp
    params: tuple[tuple[str, float], ...]
    text: str = ""

    def param(self, name: str) -> float:
        return dict(self.params)[name]

    def sample(self, rng: random.Random) -> float:
        p = dict(self.params)
        if self.kind == "fixed":
            return p["value"]
        if self.kind == "uniform":
            return rng.uniform(p["lo"], p["hi"])
        if self.kind == "lognormal":
            return p["median"] * math.exp(rng.gauss(0.0, p["sigma"]))
        return rng.expovariate(1.0 / p["mean"]) if p["mean"] > 0 else 0.0

    @property
    def median_s(self) -> float:
        p = dict(self.params)
        if self.kind == "fixed":
            return p["value"]
        if self.kind == "uniform":
            return (p["lo"] + p["hi"]) / 2
        if self.kind == "lognormal":
            return p["median"]
        return p["mean"] * math.log(2)


def parse_distribution(text: str, flag: str, kinds: tuple[str, ...]) -> Distribution:
    """`fixed:S` (also a bare `S`), `uniform:lo=S,hi=S`, `lognormal:median=S,sigma=X`, `exp:mean=S`,
    restricted to `kinds`. Raises SimulationInputError naming `flag` and the text."""
    allowed = ", ".join(_forms(k) for k in kinds)
    bad = f"{flag} {text!r}: expected {allowed}"
    raw = text.strip()
    kind, _, rest = raw.partition(":")
    kind = kind.strip().lower()
    if not _:
        if "fixed" in kinds and _number(raw) is not None:
            kind, rest = "fixed", raw
        else:
            raise SimulationInputError(bad)
    if kind not in kinds:
        raise SimulationInputError(bad)
    names = _PARAMS[kind]
    values: dict[str, float] = {}
    parts = [p.strip() for p in rest.split(",")] if rest.strip() else []
    if kind == "fixed" and len(parts) == 1 and "=" not in parts[0]:
        parts = [f"value={parts[0]}"]
    for part in parts:
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or key not in names or key in values:
            raise SimulationInputError(bad)
        number = _seconds(value) if key in _SECONDS else _number(value)
        if number is None or number < 0 or not math.isfinite(number):
            raise SimulationInputError(f"{flag} {text!r}: {key} must be a number >= 0"
                                       + (" (seconds or HH:MM:SS)" if key in _SECONDS else ""))
        values[key] = number
    if set(values) != set(names):
        raise SimulationInputError(bad)
    if kind == "uniform" and values["lo"] > values["hi"]:
        raise SimulationInputError(f"{flag} {text!r}: lo must not exceed hi")
    return Distribution(kind, tuple((n, values[n]) for n in names), raw)


def _forms(kind: str) -> str:
    return {"fixed": "fixed:S", "uniform": "uniform:lo=S,hi=S", "lognormal": "lognormal:median=S,sigma=X",
            "exp": "exp:mean=S"}[kind]


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _seconds(text: str) -> float | None:
    try:
        return parse_duration(_number(text) if _number(text) is not None else text.strip())
    except ValueError:
        return None
