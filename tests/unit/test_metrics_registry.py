"""apimachinery.metrics: the Prometheus text format of counters and gauges read at scrape time."""

from __future__ import annotations

from apimachinery.metrics import Registry


def test_gauges_read_at_scrape_time_with_and_without_labels() -> None:
    reg = Registry()
    open_watches = {("", "v1", "Pod"): 2, ("apps", "v1", "Deployment"): 0}
    reg.gauge("watchers", "Open watches", ("group", "version", "kind"), fn=lambda: open_watches)
    reg.gauge("answer", "A number", fn=lambda: 42)
    text = reg.render()
    assert 'watchers{group="",version="v1",kind="Pod"} 2' in text
    assert 'watchers{group="apps",version="v1",kind="Deployment"} 0' in text
    assert "# TYPE watchers gauge" in text and "\nanswer 42\n" in text
    del open_watches[("", "v1", "Pod")]  # a series that is gone disappears at the next scrape
    assert 'kind="Pod"' not in reg.render()
