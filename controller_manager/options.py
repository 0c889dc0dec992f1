"""Flag value types shared by the controller-manager's command line (Go-style durations, booleans)."""

from __future__ import annotations

import re

import click

_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds from a Go duration ("40s", "5m0s", "1h30m", "250ms") or a plain number of seconds."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx):  # type: ignore[override]
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


DURATION = Duration()


def bool_flag(*names: str, default: bool, help: str):
    """An upstream-style boolean flag: `--x`, `--x=true`, `--x=false` all work."""
    return click.option(*names, type=click.BOOL, default=default, is_flag=False, flag_value=True,
                        show_default=True, help=help)
