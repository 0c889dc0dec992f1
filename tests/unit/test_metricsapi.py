"""metrics.k8s.io from kubelet summaries (apiserver/metricsapi.py): decoding, rates, quantities, the
last-two-points store, and Go durations (apimachinery/duration.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from apimachinery.duration import format_duration, parse_duration
from apiserver import metricsapi as m
from apiserver.resources import TABLE

NS = 1_000_000_000
T0 = dt.datetime(2026, 11, 21, 12, 0, 0, tzinfo=dt.UTC)


def ts(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def stats(start: float, at: float, cpu_ns: int, working_set: int, name: str = "") -> dict:
    out = {"startTime": ts(start), "cpu": {"time": ts(at), "usageNanoCores": 1, "usageCoreNanoSeconds": cpu_ns},
           "memory": {"time": ts(at), "workingSetBytes": working_set, "usageBytes": working_set * 2}}
    if name:
        out["name"] = name
    return out


def summary(at: float, node_cpu: int, containers: dict[tuple[str, str], list[dict]]) -> dict:
    pods = [{"podRef": {"namespace": ns, "name": name, "uid": f"uid-{name}"}, "containers": cs,
             "cpu": {"time": ts(at)}, "memory": {"time": ts(at)}} for (ns, name), cs in containers.items()]
    return {"node": {"nodeName": "n1", **stats(-3600, at, node_cpu, 2 * 1024**3)}, "pods": pods}


# --- quantities and durations --------------------------------------------------------------------


@pytest.mark.parametrize(("nano_cores", "text"), [
    (0, "0"), (1, "1n"), (12345678, "12345678n"), (12000000, "12m"), (250_000_000, "250m"),
    (1_000_000_000, "1"), (1_500_000_000, "1500m"), (2_000_001_000, "2000001u"),
])
def test_cpu_is_a_quantity_of_nano_cores(nano_cores: int, text: str) -> None:
    assert m.cpu_quantity(nano_cores) == text


@pytest.mark.parametrize(("nbytes", "text"), [
    (0, "0"), (512, "512"), (4096, "4Ki"), (12345 * 1024, "12345Ki"), (64 * 1024**2, "64Mi"),
    (1_000_000, "1000000"), (3 * 1024**3, "3Gi"),
])
def test_memory_is_a_binary_si_quantity(nbytes: int, text: str) -> None:
    assert m.memory_quantity(nbytes) == text


@pytest.mark.parametrize(("nanos", "text"), [
    (0, "0s"), (1, "1ns"), (1500, "1.5\u00b5s"), (2_000_000, "2ms"), (1_234_567, "1.234567ms"),
    (15 * NS, "15s"), (15 * NS + 4_000_000, "15.004s"), (60 * NS, "1m0s"), (90 * NS + NS // 2, "1m30.5s"),
    (3600 * NS, "1h0m0s"), (3723 * NS, "1h2m3s"), (-15 * NS, "-15s"), (100 * 3600 * NS, "100h0m0s"),
])
def test_go_durations(nanos: int, text: str) -> None:
    assert format_duration(nanos) == text
    assert parse_duration(text) == nanos


def test_parse_duration_grammar() -> None:
    assert parse_duration("0") == 0
    assert parse_duration("1h30m") == 5400 * NS
    assert parse_duration("+.5s") == NS // 2
    assert parse_duration("1.5us") == parse_duration("1.5\u03bcs") == 1500
    for bad in ("", "15", "s", "1x", "1.s.", ".s", "--1s", "1s ", None):
        with pytest.raises(ValueError):
            parse_duration(bad)  # type: ignore[arg-type]


# --- summary → points ----------------------------------------------------------------------------


def test_decode_summary() -> None:
    s = summary(0, 5 * NS, {("ns", "web"): [stats(-60, 0, 3 * NS, 4096, "app"), stats(-60, 0, NS, 8192, "side")]})
    batch = m.decode_summary("n1", s)
    assert batch.nodes["n1"] == m.Point((T0.timestamp() - 3600) * NS, T0.timestamp() * NS, 5 * NS, 2 * 1024**3)
    assert list(batch.pods[("ns", "web")]) == ["app", "side"]
    assert batch.pods[("ns", "web")]["side"].memory == 8192


@pytest.mark.parametrize("broken", [
    {"cpu": {"time": ts(0), "usageCoreNanoSeconds": 0}},  # zero CPU: incomplete
    {"memory": {"workingSetBytes": 0}},  # zero memory
    {"startTime": None},  # no start time
    {"cpu": {"usageCoreNanoSeconds": 5}},  # no measurement time
    {"cpu": None},
])
def test_incomplete_points_are_left_out_and_so_is_their_pod(broken: dict) -> None:
    good = stats(-60, 0, NS, 4096, "a")
    bad = {**stats(-60, 0, NS, 4096, "b"), **broken}
    s = summary(0, NS, {("ns", "ok"): [good], ("ns", "partial"): [good, bad]})
    s["node"] = {**s["node"], **broken}
    batch = m.decode_summary("n1", s)
    assert list(batch.pods) == [("ns", "ok")]  # a pod with partial results is dropped whole
    assert batch.nodes == {}


def test_odd_summaries_decode_to_nothing() -> None:
    for odd in (None, [], {"node": "x", "pods": [None, {"podRef": "x"}, {"podRef": {"name": "p"}, "containers": []}]}):
        batch = m.decode_summary("n1", odd)
        assert batch.nodes == {} and batch.pods == {}


# --- the store: rates between the last two points -----------------------------------------------


def store_after(*summaries: dict, resolution: float = 15) -> m.MetricsStore:
    store = m.MetricsStore(resolution)
    for s in summaries:
        store.store(m.decode_summary("n1", s))
    return store


def test_one_scrape_is_not_enough() -> None:
    store = store_after(summary(0, NS, {("ns", "p"): [stats(-600, 0, NS, 4096, "c")]}))
    assert store.node_metrics("n1", None) is None
    assert store.pod_metrics("ns", "p", None) is None


def test_rates_between_two_scrapes() -> None:
    first = summary(0, 100 * NS, {("ns", "p"): [stats(-600, 0, 10 * NS, 4096, "c"), stats(-600, 0, NS, 4096, "d")]})
    # over 15 s: the node used 30 core-seconds (2 cores), c 3.75 (250m), d 0.0015 (100µ)
    second = summary(15, 130 * NS, {("ns", "p"): [stats(-600, 15, int(13.75 * NS), 64 * 1024**2, "c"),
                                                  stats(-600, 15, NS + 1_500_000, 12345 * 1024, "d")]})
    store = store_after(first, second)
    node = store.node_metrics("n1", {"kubernetes.io/hostname": "n1"})
    assert node is not None
    assert node["metadata"]["name"] == "n1" and node["metadata"]["labels"] == {"kubernetes.io/hostname": "n1"}
    assert node["metadata"]["creationTimestamp"].endswith("Z")
    assert (node["timestamp"], node["window"]) == (ts(15), "15s")
    assert node["usage"] == {"cpu": "2", "memory": "2Gi"}
    pod = store.pod_metrics("ns", "p", {"app": "web"})
    assert pod is not None
    assert pod["metadata"] == {"name": "p", "namespace": "ns", "creationTimestamp": pod["metadata"]["creationTimestamp"],
                               "labels": {"app": "web"}}
    assert (pod["timestamp"], pod["window"]) == (ts(15), "15s")
    assert pod["containers"] == [{"name": "c", "usage": {"cpu": "250m", "memory": "64Mi"}},
                                 {"name": "d", "usage": {"cpu": "100u", "memory": "12345Ki"}}]
    assert "labels" not in store.pod_metrics("ns", "p", {})["metadata"]


def test_the_same_point_twice_changes_nothing() -> None:
    a = summary(0, NS, {("ns", "p"): [stats(-600, 0, NS, 4096, "c")]})
    b = summary(15, 2 * NS, {("ns", "p"): [stats(-600, 15, 2 * NS, 4096, "c")]})
    store = store_after(a, b, b)  # the kubelet answered with the same measurement again
    assert store.node_metrics("n1", None)["window"] == "15s"
    assert store.pod_metrics("ns", "p", None)["containers"][0]["usage"]["cpu"] == "66666666n"


def test_a_restarted_container_waits_for_its_second_point() -> None:
    a = summary(0, NS, {("ns", "p"): [stats(-600, 0, 9 * NS, 4096, "c")]})
    restarted = summary(15, 2 * NS, {("ns", "p"): [stats(8, 15, 1 * NS, 4096, "c")]})
    store = store_after(a, restarted)
    assert store.pod_metrics("ns", "p", None) is None  # no point of the new container before it
    store.store(m.decode_summary("n1", summary(30, 3 * NS, {("ns", "p"): [stats(8, 30, 4 * NS, 4096, "c")]})))
    assert store.pod_metrics("ns", "p", None)["containers"][0]["usage"]["cpu"] == "200m"


def test_a_container_started_in_the_second_of_its_first_point() -> None:
    # kubelet times have whole seconds: started at 12:00:00.4, first measured at 12:00:00.9
    a = summary(0, NS, {("ns", "p"): [stats(0, 0, NS, 4096, "c")]})
    b = summary(1, 2 * NS, {("ns", "p"): [stats(0, 1, NS + 5_000_000, 4096, "c")]})
    pod = store_after(a, b).pod_metrics("ns", "p", None)
    assert pod is not None and pod["window"] == "1s"
    assert pod["containers"][0]["usage"]["cpu"] == "5m"


def test_every_container_needs_two_points() -> None:
    a = summary(0, NS, {("ns", "p"): [stats(-600, 0, NS, 4096, "c")]})
    b = summary(15, 2 * NS, {("ns", "p"): [stats(-600, 15, 2 * NS, 4096, "c"), stats(-600, 15, NS, 4096, "new")]})
    assert store_after(a, b).pod_metrics("ns", "p", None) is None


def test_cpu_going_back_skips_the_container() -> None:
    a = summary(0, NS, {("ns", "p"): [stats(-600, 0, 5 * NS, 4096, "c"), stats(-600, 0, NS, 4096, "d")]})
    b = summary(15, 2 * NS, {("ns", "p"): [stats(-600, 15, 4 * NS, 4096, "c"), stats(-600, 15, 2 * NS, 4096, "d")]})
    pod = store_after(a, b).pod_metrics("ns", "p", None)
    assert [c["name"] for c in pod["containers"]] == ["d"]


def test_a_fresh_container_counts_from_its_start() -> None:
    # started 12 s before its first point (10 s ≤ age < resolution): the start is its previous point
    store = store_after(summary(0, NS, {("ns", "p"): [stats(-12, 0, 3 * NS, 4096, "c")]}))
    pod = store.pod_metrics("ns", "p", None)
    assert pod is not None and pod["window"] == "12s"
    assert pod["containers"][0]["usage"]["cpu"] == "250m"
    # younger than 10 s: too short a history
    assert store_after(summary(0, NS, {("ns", "p"): [stats(-5, 0, NS, 4096, "c")]})).pod_metrics("ns", "p", None) is None


def test_what_the_last_scrape_missed_is_gone() -> None:
    a = summary(0, NS, {("ns", "p"): [stats(-600, 0, NS, 4096, "c")]})
    b = summary(15, 2 * NS, {("ns", "p"): [stats(-600, 15, 2 * NS, 4096, "c")]})
    store = store_after(a, b)
    store.store(m.Batch())  # the node did not answer
    assert store.node_metrics("n1", None) is None and store.pod_metrics("ns", "p", None) is None


def test_pod_timestamp_and_window_are_its_oldest_containers() -> None:
    a = summary(0, NS, {("ns", "p"): [stats(-600, 0, NS, 4096, "c")]})
    b = summary(15, NS, {("ns", "p"): [stats(-600, 15, 2 * NS, 4096, "c"), stats(3, 15, NS, 4096, "fresh")]})
    pod = store_after(a, b).pod_metrics("ns", "p", None)
    assert [c["name"] for c in pod["containers"]] == ["c", "fresh"]
    assert (pod["timestamp"], pod["window"]) == (ts(15), "15s")


# --- tables --------------------------------------------------------------------------------------


def test_table_rows_are_metrics_servers() -> None:
    from apiserver.tables import printer_for, table

    pods = TABLE.lookup("metrics.k8s.io", "v1beta1", "pods")
    obj = {"metadata": {"name": "p", "namespace": "ns"}, "window": "15s",
           "containers": [{"name": "a", "usage": {"cpu": "250m", "memory": "64Mi"}},
                          {"name": "b", "usage": {"cpu": "500u", "memory": "1Mi"}}]}
    t = table(pods.plural, [obj], printer=printer_for(pods))
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert [c["format"] for c in t["columnDefinitions"]] == ["name", "quantity", "quantity", "duration"]
    assert t["rows"][0]["cells"] == ["p", "250500u", "65Mi", "15s"]
    nodes = TABLE.lookup("metrics.k8s.io", "v1beta1", "nodes")
    node = {"metadata": {"name": "n"}, "window": "15s", "usage": {"cpu": "2", "memory": "2Gi"}}
    assert table(nodes.plural, [node], printer=printer_for(nodes))["rows"][0]["cells"] == ["n", "2", "2Gi", "15s"]


def test_metric_resolution_flag() -> None:
    import click

    from apiserver.__main__ import main

    def resolution(*args: str) -> float:  # (click consumes the list it parses)
        return main.make_context("apiserver", ["--tls-cert-file", "c", "--tls-private-key-file", "k", *args]).params[
            "metric_resolution"]

    assert resolution() == 15.0
    assert resolution("--metric-resolution", "2s") == 2.0
    assert resolution("--metric-resolution", "1m") == 60.0
    for bad in ("0s", "soon"):
        with pytest.raises(click.BadParameter):
            resolution("--metric-resolution", bad)


def test_a_servers_scraper_does_not_keep_the_server_alive() -> None:
    import gc
    import types
    import weakref

    class FakeServer:
        opts = types.SimpleNamespace(metric_resolution=15)

        def __init__(self) -> None:  # as APIServer.__init__ makes it
            self.metrics_scraper = m.Scraper(self)  # type: ignore[arg-type]

    server = FakeServer()
    scraper = server.metrics_scraper
    assert scraper.server is server
    assert FakeServer().metrics_scraper is not scraper
    ref = weakref.ref(server)
    del server, scraper
    gc.collect()
    assert ref() is None
