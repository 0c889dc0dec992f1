"""Discovery lists groups as the aggregator does: by groupPriorityMinimum, highest first, then name."""

from __future__ import annotations

from apiserver import discovery
from apiserver.resources import TABLE


def test_built_in_groups_in_upstreams_order() -> None:
    names = [g["name"] for g in discovery.api_group_list(TABLE)["groups"]]
    assert names[:6] == ["apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io",
                         "authorization.k8s.io", "autoscaling"]
    assert names[-1] == "metrics.k8s.io"  # metrics-server's 100
    items = [i["metadata"]["name"] for i in discovery.aggregated(TABLE, legacy=False)["items"]]
    assert items == names  # no two built-in groups tie on priority and name order both ways


def test_custom_and_extension_groups_by_their_priority() -> None:
    order = discovery.ordered(["b.example.com", "apps", "a.example.com", "ext.example.com", "metrics.k8s.io"],
                              {"ext.example.com": 17900})
    assert order == ["ext.example.com", "apps", "a.example.com", "b.example.com", "metrics.k8s.io"]


def test_an_extension_group_replaces_a_local_one_of_its_name() -> None:
    remote = {"metrics.k8s.io": {"kind": "APIGroup", "apiVersion": "v1", "name": "metrics.k8s.io",
                                 "versions": [{"groupVersion": "metrics.k8s.io/v1beta2", "version": "v1beta2"}],
                                 "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta2", "version": "v1beta2"}}}
    groups = discovery.api_group_list(TABLE, remote, {"metrics.k8s.io": 100})["groups"]
    metrics = [g for g in groups if g["name"] == "metrics.k8s.io"]
    assert metrics == [{"name": "metrics.k8s.io", "versions": remote["metrics.k8s.io"]["versions"],
                        "preferredVersion": remote["metrics.k8s.io"]["preferredVersion"]}]


def test_the_legacy_list_breaks_ties_by_api_service_name() -> None:
    # upstream sorts APIServices by priority, then name: v1.zeta.io before v1alpha1.aaa.io
    remote = {g: {"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                  "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
              for g, v in (("aaa.io", "v1alpha1"), ("zeta.io", "v1"))}
    names = [g["name"] for g in discovery.api_group_list(TABLE, remote, {"aaa.io": 1000, "zeta.io": 1000})["groups"]]
    assert names.index("zeta.io") < names.index("aaa.io")
