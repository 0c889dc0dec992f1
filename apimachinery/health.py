"""The answer of a /healthz, /livez or /readyz endpoint, as k8s.io/apiserver's healthz handler
words it (the apiserver and every daemon's health port use it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def report(kind: str, results: Mapping[str, bool], verbose: bool, excluded: Iterable[str] = ()) -> tuple[int, str]:
    """→ (HTTP status, body): `ok`, or every check ([+]/[-]) when one failed or `verbose`; a
    failure is a 500; `excluded` checks (?exclude=) are listed as such and do not count."""
    excluded = set(excluded)
    failed = [k for k, ok in results.items() if not ok and k not in excluded]
    if not verbose and not failed:
        return 200, "ok"
    lines = []
    for name, ok in results.items():
        if name in excluded:
            lines.append(f"[+]{name} excluded: ok")
        else:
            lines.append(f"[+]{name} ok" if ok else f"[-]{name} failed: reason withheld")
    unknown = sorted(excluded - set(results))
    if unknown:
        lines.append("warn: some health checks cannot be excluded: no matches for " + ",".join(f'"{u}"' for u in unknown))
    lines.append(f"{kind} check {'failed' if failed else 'passed'}")
    return (500 if failed else 200), "\n".join(lines) + "\n"


def single(results: Mapping[str, bool], name: str) -> tuple[int, str] | None:
    """/readyz/<name>: `ok`, or a 500 naming it; None when there is no such check (a 404)."""
    if name not in results:
        return None
    if results[name]:
        return 200, "ok"
    return 500, f"internal server error: {name} check failed\n"
