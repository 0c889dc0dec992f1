"""Standard cron schedules (5 fields and @-macros), as CronJobs use them (robfig/cron).

`parse()` validates (used by the apiserver) and `CronSchedule.next_after()` gives the
next activation (used by the CronJob controller). Day-of-month and day-of-week combine
with OR when both are restricted, as in Vixie cron. A `TZ=<zone> ` or `CRON_TZ=<zone> `
prefix names the schedule's time zone (the apiserver only lets CronJobs that already had one
keep it; the timeZone field replaced it).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

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
# (min, max, names) per field: minute hour day-of-month month day-of-week
FIELDS = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTHS), (0, 6, DAYS))
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


class CronError(ValueError):
    pass


def _value(s: str, lo: int, hi: int, names: dict[str, int], what: str) -> int:
    v = names.get(s.lower())
    if v is None:
        if not s.isdigit():
            raise CronError(f"failed to parse {what} {s!r}")
        v = int(s)
    if what == "day of week" and v == 7:
        v = 0  # Sunday, both ways
    if not lo <= v <= hi:
        raise CronError(f"{what} value {v} out of range [{lo}, {hi}]")
    return v


def _field(expr: str, lo: int, hi: int, names: dict[str, int], what: str) -> tuple[frozenset[int], bool]:
    """→ (allowed values, restricted?) where '*' and '?' are unrestricted."""
    out: set[int] = set()
    restricted = True
    for part in expr.split(","):
        if not part:
            raise CronError(f"empty {what} item in {expr!r}")
        rng, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"invalid step {step_s!r} in {what}")
            step = int(step_s)
        if rng in ("*", "?"):
            start, end = lo, hi
            if not step_s:
                restricted = False
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _value(a, lo, hi, names, what), _value(b, lo, hi, names, what)
            if start > end:
                raise CronError(f"beginning of range ({start}) beyond end of range ({end}) in {what}")
        else:
            start = _value(rng, lo, hi, names, what)
            end = hi if step_s else start
        out.update(range(start, end + 1, step))
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
    return _split_location(schedule.strip())[0]


def parse(schedule: str) -> CronSchedule:
    location, s = _split_location(schedule.strip())
    if location is not None and load_zone(location) is None:
        raise CronError(f"provided bad location {location}: unknown time zone {location}")
    s = MACROS.get(s.lower(), s)
    if s.startswith("@every"):
        raise CronError("@every is not supported")
    parts = s.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {schedule}")
    parsed = [_field(p, lo, hi, names, what) for p, (lo, hi, names), what in zip(parts, FIELDS, FIELD_NAMES, strict=True)]
    return CronSchedule(
        parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0], parsed[2][1], parsed[4][1]
    )
