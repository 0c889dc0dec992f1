"""The scheduler's Prometheus metrics, with upstream's names (pkg/scheduler/metrics)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from apimachinery.metrics import Gauge, Registry

# upstream: exponential buckets 0.001 * 2^i, 15 of them (1 ms .. 16 s)
ATTEMPT_BUCKETS = tuple(0.001 * 2**i for i in range(15))
E2E_BUCKETS = tuple(0.01 * 2**i for i in range(20))
ATTEMPTS_BUCKETS = (1, 2, 4, 8, 16)
VICTIMS_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

SCHEDULED = "scheduled"
UNSCHEDULABLE = "unschedulable"
ERROR = "error"


class LiveGauge(Gauge):
    """A labelled gauge read from a callable at each scrape ({label value: number})."""

    def __init__(self, name: str, help_: str, label: str, read: Callable[[], dict[str, float]]) -> None:
        super().__init__(name, help_, [label])
        self.read = read

    def render(self) -> list[str]:
        try:
            self.values = {(k,): float(v) for k, v in self.read().items()}
        except Exception:  # a scrape must not fail because a source is not ready
            pass
        return super().render()


class SchedulerMetrics:
    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry or Registry()
        self.schedule_attempts = r.counter(
            "scheduler_schedule_attempts_total",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be "
            "scheduled, while 'error' means an internal scheduler problem.", ["result", "profile"])
        self.attempt_duration = r.histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)", ["result", "profile"],
            ATTEMPT_BUCKETS)
        self.algorithm_duration = r.histogram(
            "scheduler_scheduling_algorithm_duration_seconds", "Scheduling algorithm latency in seconds", (),
            ATTEMPT_BUCKETS)
        self.binding_duration = r.histogram(
            "scheduler_binding_duration_seconds", "Binding latency in seconds (the API call)", (), ATTEMPT_BUCKETS)
        self.e2e_duration = r.histogram(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue",
            ["attempts"], E2E_BUCKETS)
        self.pod_attempts = r.histogram(
            "scheduler_pod_scheduling_attempts", "Number of attempts to successfully schedule a pod.", (),
            ATTEMPTS_BUCKETS)
        self.queue_incoming = r.counter(
            "scheduler_queue_incoming_pods_total", "Number of pods added to scheduling queues by event and queue "
            "type.", ["queue", "event"])
        self.preemption_attempts = r.counter(
            "scheduler_preemption_attempts_total", "Total preemption attempts in the cluster till now")
        self.preemption_victims = r.histogram(
            "scheduler_preemption_victims", "Number of selected preemption victims", (), VICTIMS_BUCKETS)
        self.unschedulable_reasons = r.counter(
            "scheduler_unschedulable_pods", "The number of unschedulable pods broken down by plugin name "
            "(counted per failed attempt).", ["plugin", "profile"])
        self.registry = r

    def watch(self, sizes: Callable[[], dict[str, int]], cache_sizes: Callable[[], dict[str, int]],
              inflight: Callable[[], int], dropped: Callable[[], int]) -> None:
        """Gauges read live on each scrape: queue sizes, cache sizes, in-flight bindings, dropped events."""
        r = self.registry
        r.metrics.append(LiveGauge(
            "scheduler_pending_pods", "Number of pending pods, by the queue type. 'active' means number of pods in "
            "activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in "
            "unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of "
            "unschedulable pods that the scheduler never attempted to schedule because they are gated.",
            "queue", sizes))
        r.metrics.append(LiveGauge(
            "scheduler_scheduler_cache_size", "Number of nodes, pods, and assumed (bound) pods in the scheduler "
            "cache.", "type", cache_sizes))
        r.gauge("scheduler_inflight_bindings", "Bindings sent and not yet answered.", fn=inflight)
        r.gauge("scheduler_events_dropped", "Events the recorder dropped (queue full or API failures).", fn=dropped)
        timer = GCTimer()
        r.gauge("scheduler_gc_seconds_total", "Time spent in Python's cyclic garbage collector.",
                fn=lambda: timer.seconds)
        self.gc_timer = timer


class GCTimer:
    """Accumulates the time the cyclic garbage collector runs (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.collections += 1
