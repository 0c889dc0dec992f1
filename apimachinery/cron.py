"""Cron schedules as CronJobs use them: robfig/cron v3's ParseStandard, errors worded as it words them.

`parse()` validates (used by the apiserver) and the schedule's `next_after()` gives the next
activation (used by the CronJob controller). Five fields (minute hour day-of-month month
day-of-week, names for months and days, `*`/`?`, ranges, steps, lists), a descriptor (`@daily`
and the like, case as written) or `@every <Go duration>` (a fixed delay, whole seconds, at least
one). Day-of-month and day-of-week combine with OR when neither is a star, as in Vixie cron. A
`TZ=<zone> ` or `CRON_TZ=<zone> ` prefix names the schedule's time zone (the apiserver only lets
CronJobs that already had one keep it; the timeZone field replaced it).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

from apimachinery.validation import go_atoi, go_quote

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (min, max, names) per field: minute hour day-of-month month day-of-week (0-6: robfig has no 7)
FIELDS = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTHS), (0, 6, DAYS))


class CronError(ValueError):
    pass


def _int(s: str) -> int:
    """robfig mustParseInt: Go's strconv.Atoi, then no negatives."""
    try:
        v = go_atoi(s)
    except ValueError as e:
        raise CronError(f"failed to parse int from {s}: strconv.Atoi: parsing {go_quote(s)}: {e}") from None
    if v < 0:
        raise CronError(f"negative number ({v}) not allowed: {s}")
    return v


def _int_or_name(s: str, names: dict[str, int]) -> int:
    v = names.get(s.lower())
    return v if v is not None else _int(s)


def _range(expr: str, lo: int, hi: int, names: dict[str, int]) -> tuple[range, bool]:
    """robfig getRange: `number | number "-" number [ "/" number ]`, `*` or `?` for all. → (the
    values, whether it was a star: `*`, or `*/1`, leaves the field unrestricted)."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = low_high[0] in ("*", "?")
    if star:
        start, end = lo, hi
    else:
        start = _int_or_name(low_high[0], names)
        if len(low_high) > 2:
            raise CronError(f"too many hyphens: {expr}")
        end = _int_or_name(low_high[1], names) if len(low_high) == 2 else start
    if len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if len(low_high) == 1:
            end = hi  # "N/step" is "N-max/step"
        star = star and step <= 1
    if start < lo:
        raise CronError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise CronError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return range(start, end + 1, step), star


def _field(expr: str, lo: int, hi: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    """robfig getField: comma-separated ranges (empty ones skipped) → (allowed values, restricted?)."""
    out: set[int] = set()
    restricted = True
    for part in expr.split(","):
        if part:
            values, star = _range(part, lo, hi, names)
            out.update(values)
            restricted = restricted and not star
    return frozenset(out), restricted


@dataclass(frozen=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_restricted: bool
    dow_restricted: bool

    def _day_matches(self, d: dt.datetime) -> bool:
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.dom_restricted and self.dow_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, t: dt.datetime) -> dt.datetime | None:
        """The first activation strictly after `t` (same tzinfo), within 5 years."""
        cur = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t + dt.timedelta(days=366 * 5)
        while cur <= limit:
            if cur.month not in self.months:
                cur = (cur.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(cur):
                cur = cur.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if cur.hour not in self.hours:
                cur = cur.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if cur.minute not in self.minutes:
                cur += dt.timedelta(minutes=1)
                continue
            return cur
        return None


def load_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA time zone of that name, None if there is none."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _split_location(schedule: str) -> tuple[str | None, str]:
    """(the zone a TZ=/CRON_TZ= prefix names, or None; the schedule without it)."""
    if not schedule.startswith(("TZ=", "CRON_TZ=")):
        return None, schedule
    prefix, _, rest = schedule.partition(" ")
    return prefix.partition("=")[2], rest.strip()


def location_of(schedule: str) -> str | None:
    """The time zone a schedule's TZ=/CRON_TZ= prefix names, if it has one."""
    return _split_location(schedule)[0]


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>`: activations a fixed delay apart (robfig ConstantDelaySchedule); the
    delay is whole seconds, at least one."""

    delay: dt.timedelta

    def next_after(self, t: dt.datetime) -> dt.datetime:
        return t.replace(microsecond=0) + self.delay


Schedule = CronSchedule | EverySchedule

#: Go's time.ParseDuration units, in nanoseconds
_DURATION_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def _time_quote(s: str) -> str:
    """Go's time.quote: "…" with \\ and \" escaped and every byte outside printable ASCII as \\xNN."""
    out = []
    for ch in s:
        if " " <= ch < "\x80":
            out.append("\\" + ch if ch in '"\\' else ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration (`1h30m`, `1.5h`, `300ms`, `-2s`) → nanoseconds; CronError with Go's message."""
    invalid = CronError(f"time: invalid duration {_time_quote(text)}")
    s, negative = text, False
    if s[:1] in ("-", "+"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        m = _DURATION_PART.match(s)  # every part optional: it always matches
        assert m is not None
        whole, frac, unit = m.groups()
        if not whole and not frac:
            raise invalid  # no digits before the unit
        if not unit:
            raise CronError(f"time: missing unit in duration {_time_quote(text)}")
        if unit not in _DURATION_UNITS:
            raise CronError(f"time: unknown unit {_time_quote(unit)} in duration {_time_quote(text)}")
        scale = _DURATION_UNITS[unit]
        total += int(whole or 0) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
        if total > 2**63 - (0 if negative else 1):
            raise invalid
        s = s[m.end():]
    return -total if negative else total


def _descriptor(spec: str) -> Schedule:
    """robfig parseDescriptor: the @-macros (case as written) and `@every <duration>`."""
    if spec in MACROS:
        return parse(MACROS[spec])
    if spec.startswith("@every "):
        try:
            nanos = parse_go_duration(spec[len("@every "):])
        except CronError as e:
            raise CronError(f"failed to parse duration {spec}: {e}") from None
        return EverySchedule(dt.timedelta(seconds=max(nanos // 10**9, 1)))
    raise CronError(f"unrecognized descriptor: {spec}")


def parse(schedule: str) -> Schedule:
    """robfig/cron v3 ParseStandard, as upstream's CronJob validation and controller call it: five
    fields (minute hour day-of-month month day-of-week) or a descriptor, after an optional
    TZ=/CRON_TZ= prefix; errors carry robfig's messages."""
    if not schedule:
        raise CronError("empty spec string")
    location, spec = _split_location(schedule)
    if location is not None and load_zone(location) is None:
        raise CronError(f"provided bad location {location}: unknown time zone {location}")
    if spec.startswith("@"):
        return _descriptor(spec)
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: [{' '.join(parts)}]")
    parsed = [_field(p, lo, hi, names) for p, (lo, hi, names) in zip(parts, FIELDS, strict=True)]
    return CronSchedule(
        parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0], parsed[2][1], parsed[4][1]
    )
