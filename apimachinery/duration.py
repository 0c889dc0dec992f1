"""Durations as upstream writes them.

metav1.Duration's JSON form: Go's time.Duration String() and time.ParseDuration, in nanoseconds.

"15s", "1m0s", "2h3m4.5s", "250ms", "1.5µs", "0s" — what upstream writes for fields such as
metrics.k8s.io's `window`, and the grammar it reads back ([-+]?([0-9]*(\\.[0-9]*)?unit)+ or "0").
"""

from __future__ import annotations

import re
from decimal import Decimal

_UNIT_NANOS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9,
               "m": 60 * 10**9, "h": 3600 * 10**9}
_PIECE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
#: below one second Go picks the largest unit that keeps an integer part: (limit, unit, digits)
_SMALL_UNITS = ((10**3, "ns", 0), (10**6, "\u00b5s", 3), (10**9, "ms", 6))


def _fraction(value: int, digits: int) -> tuple[int, str]:
    """`value` split at `digits` decimal places: the integer part and ".fff" without trailing zeros."""
    if not digits:
        return value, ""
    whole, rest = divmod(value, 10**digits)
    frac = f"{rest:0{digits}d}".rstrip("0")
    return whole, ("." + frac) if frac else ""


def format_duration(nanos: int) -> str:
    """time.Duration(nanos).String()."""
    sign = "-" if nanos < 0 else ""
    u = abs(nanos)
    if u == 0:
        return "0s"
    for limit, unit, digits in _SMALL_UNITS:
        if u < limit:
            whole, frac = _fraction(u, digits)
            return f"{sign}{whole}{frac}{unit}"
    seconds, frac = _fraction(u, 9)
    out = f"{seconds % 60}{frac}s"
    minutes = seconds // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        if minutes >= 60:
            out = f"{minutes // 60}h{out}"
    return sign + out


def parse_duration(s: str) -> int:
    """time.ParseDuration(s) in nanoseconds; ValueError with Go's message when `s` is not one."""
    if not isinstance(s, str):
        raise ValueError(f"time: invalid duration {s!r}")
    body = s[1:] if s[:1] in ("+", "-") else s
    if body == "0":
        return 0
    total = Decimal(0)
    pos = 0
    while pos < len(body):
        m = _PIECE.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f'time: invalid duration "{s}"')
        total += Decimal(m.group(1)) * _UNIT_NANOS[m.group(2)]
        pos = m.end()
    if not body:
        raise ValueError(f'time: invalid duration "{s}"')
    nanos = int(total)
    if nanos > 2**63 - 1:
        raise ValueError(f'time: invalid duration "{s}"')
    return -nanos if s.startswith("-") else nanos


# --- k8s.io/apimachinery/pkg/util/duration: ages and TTLs for people ------------------------------


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h" if m % 60 == 0 else f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d" if h % 24 == 0 else f"{d}d{h % 24}h"
    if h < 24 * 365 * 2:
        return f"{d}d"
    y = d // 365
    if h < 24 * 365 * 8:
        return f"{y}y" if d % 365 == 0 else f"{y}y{d % 365}d"
    return f"{y}y"


def short_human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.ShortHumanDuration (kubeadm's TTL column)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 86400 * 365:
        return f"{s // 86400}d"
    return f"{s // (86400 * 365)}y"
