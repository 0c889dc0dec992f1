"""ImageLocality: size-weighted, spread-scaled image presence, 23 MiB .. 1000 MiB per container."""

from __future__ import annotations

from scheduler.plugins.image_locality import calculate_priority, normalized_image_name
from tests.unit.scheduler_fakes import Cluster, make_node, make_pod

MB = 1024 * 1024


def test_image_names_get_latest_when_untagged() -> None:
    assert normalized_image_name("nginx") == "nginx:latest"
    assert normalized_image_name("registry:5000/app") == "registry:5000/app:latest"
    assert normalized_image_name("registry:5000/app:1.2") == "registry:5000/app:1.2"


def test_thresholds() -> None:
    assert calculate_priority(0, 1) == 0
    assert calculate_priority(23 * MB, 1) == 0
    assert calculate_priority(1000 * MB, 1) == 100
    assert calculate_priority(5000 * MB, 1) == 100
    assert calculate_priority(500 * MB, 2) == 100 * (500 - 23) * MB // ((2000 - 23) * MB)


def test_nodes_holding_big_images_score_higher_scaled_by_spread() -> None:
    big = {"names": ["registry.example/app:1.0"], "sizeBytes": 800 * MB}
    c = Cluster([make_node("a", images=[big]), make_node("b")])
    s = c.scores(make_pod("p", image="registry.example/app:1.0"))["ImageLocality"]
    # 800 MiB * (1 of 2 nodes) = 400 MiB → 100 * (400 - 23) / (1000 - 23)
    assert s == {"a": 100 * (400 - 23) * MB // ((1000 - 23) * MB), "b": 0}
    assert c.scores(make_pod("p", image="elsewhere:1"))["ImageLocality"] == {"a": 0, "b": 0}
