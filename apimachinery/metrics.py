"""A tiny Prometheus text-format registry (counters, gauges, histograms) for every component."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def format_labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    """`{name="value",...}` with Prometheus escaping ("" without labels)."""
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Metric:
    kind = ""

    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_, tuple(labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_, labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def render(self) -> list[str]:
        return self.header() + [f"{self.name}{format_labels(self.label_names, k)} {v:g}" for k, v in sorted(self.values.items())]


class Gauge(Counter):
    """A value set by the owner, or read at scrape time from `fn`: a number, or for a gauge
    with labels a dict of label-value tuples to numbers."""

    kind = "gauge"

    def __init__(
        self, name: str, help_: str, labels: Sequence[str] = (),
        fn: Callable[[], float | dict[tuple[str, ...], float]] | None = None,
    ) -> None:
        super().__init__(name, help_, labels)
        self.fn = fn

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def render(self) -> list[str]:
        if self.fn is not None:
            read = self.fn()
            self.values = {k: float(v) for k, v in read.items()} if isinstance(read, dict) else {(): float(read)}
        return super().render()


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        super().__init__(name, help_, labels)
        self.buckets = tuple(buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, *labels: str) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.buckets):
            s[i] += 1
        s[-2] += value
        s[-1] += 1

    def count(self, *labels: str) -> float:
        s = self.series.get(labels)
        return s[-1] if s else 0.0

    def render(self) -> list[str]:
        out = self.header()
        for k, s in sorted(self.series.items()):
            cum = 0.0
            for b, c in zip(self.buckets, s, strict=False):
                cum += c
                le = f'le="{b:g}"'
                out.append(f"{self.name}_bucket{format_labels(self.label_names, k, le)} {cum:g}")
            inf = 'le="+Inf"'
            out.append(f"{self.name}_bucket{format_labels(self.label_names, k, inf)} {s[-1]:g}")
            out.append(f"{self.name}_sum{format_labels(self.label_names, k)} {s[-2]:g}")
            out.append(f"{self.name}_count{format_labels(self.label_names, k)} {s[-1]:g}")
        return out


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def counter(self, name: str, help_: str, labels: Sequence[str] = ()) -> Counter:
        m = Counter(name, help_, labels)
        self.metrics.append(m)
        return m

    def gauge(
        self, name: str, help_: str, labels: Sequence[str] = (),
        fn: Callable[[], float | dict[tuple[str, ...], float]] | None = None,
    ) -> Gauge:
        m = Gauge(name, help_, labels, fn)
        self.metrics.append(m)
        return m

    def histogram(self, name: str, help_: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS) -> Histogram:
        m = Histogram(name, help_, labels, buckets)
        self.metrics.append(m)
        return m

    def render(self) -> str:
        lines: list[str] = []
        for m in self.metrics:
            lines += m.render()  # type: ignore[attr-defined]
        return "\n".join(lines) + "\n"


def process_metrics(registry: Registry) -> None:
    """process_resident_memory_bytes and process_cpu_seconds_total, as client_golang exports them."""
    import os
    import resource

    def rss() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0.0

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", fn=rss)
    registry.gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", fn=cpu)
