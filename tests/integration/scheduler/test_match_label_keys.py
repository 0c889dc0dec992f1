"""matchLabelKeys / mismatchLabelKeys in pod (anti-)affinity terms (KEP-3633, on in 1.31): the
apiserver merges them into the term's labelSelector when the pod is created, the scheduler
then places the pod by that selector; bad terms are refused with upstream's causes."""

from __future__ import annotations

from typing import Any

from tests.integration.scheduler.conftest import HOSTNAME, Env, SchedulerProcess

REQ = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"


def anti(**term: Any) -> dict[str, Any]:
    """Required anti-affinity to the other "web" pods on the node."""
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": HOSTNAME, **term}]}}


def post(env: Env, name: str, labels: dict[str, str], affinity: dict[str, Any]) -> Any:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "schedulerName": env.scheduler_name,
                     "affinity": affinity}}
    return env.api.post(f"/api/v1/namespaces/{env.ns}/pods", json=body)


def test_the_pods_own_label_values_join_the_selector_and_decide_placement(scheduler: SchedulerProcess,
                                                                          env: Env) -> None:
    a = env.node("a")
    env.node("b")
    pin = {"nodeSelector": {HOSTNAME: a}}
    env.pod("old", labels={"app": "web", "rev": "1"}, **pin)
    env.wait_bound("old")
    # a rolling update's new revision: anti-affine to its own revision only
    new = env.pod("new-1", labels={"app": "web", "rev": "2"}, affinity=anti(matchLabelKeys=["rev"]), **pin)
    term = new["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"] == {"matchLabels": {"app": "web"},
                                     "matchExpressions": [{"key": "rev", "operator": "In", "values": ["2"]}]}
    assert term["matchLabelKeys"] == ["rev"]
    assert env.wait_bound("new-1")["new-1"] == a  # "old" is rev 1: no conflict
    env.pod("new-2", labels={"app": "web", "rev": "2"}, affinity=anti(matchLabelKeys=["rev"]), **pin)
    ev = env.wait_event("new-2", "FailedScheduling")
    assert "node(s) didn't match pod anti-affinity rules" in ev["message"], ev["message"]
    # mismatchLabelKeys: away from other tenants' pods, whatever their app
    r = post(env, "tenant", {"app": "web", "tenant": "t1"}, anti(mismatchLabelKeys=["tenant"], labelSelector={}))
    assert r.status_code == 201, r.text
    term = r.json()["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"] == {"matchExpressions": [{"key": "tenant", "operator": "NotIn", "values": ["t1"]}]}


def test_bad_terms_are_refused_with_upstreams_causes(scheduler: SchedulerProcess, env: Env) -> None:
    cases = [
        (anti(matchLabelKeys=["rev"], labelSelector={"matchLabels": {"rev": "1"}}),
         {f"{REQ}[0]": 'Invalid value: "rev": exists in both matchLabelKeys and labelSelector'}),
        (anti(matchLabelKeys=["zone"], mismatchLabelKeys=["zone"]),
         {f"{REQ}.matchLabelKeys[0]": 'Invalid value: "zone": exists in both matchLabelKeys and mismatchLabelKeys'}),
        (anti(mismatchLabelKeys=["rev"], labelSelector=None),
         {f"{REQ}.mismatchLabelKeys": "Forbidden: must not be specified when labelSelector is not set"}),
        (anti(matchLabelKeys=["-bad-"]),
         {f"{REQ}.matchLabelKeys[0]": "Invalid value: \"-bad-\": name part must consist of alphanumeric characters, "
                                      "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                                      "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                                      "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"}),
        (anti(topologyKey=""), {f"{REQ}.topologyKey": "Required value: can not be empty"}),
    ]
    for affinity, causes in cases:
        r = post(env, "bad", {"app": "web", "rev": "2"}, affinity)
        assert r.status_code == 422, r.text
        status = r.json()
        assert status["reason"] == "Invalid" and status["details"]["kind"] == "Pod"
        got = [(c["field"], c["message"]) for c in status["details"]["causes"]]
        assert all(cause in got for cause in causes.items()), got
    # a wrong type is a decoding error, never a server error
    for affinity in (anti(matchLabelKeys="rev"), anti(mismatchLabelKeys=[1]), anti(labelSelector="app=web"),
                     {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                         {"weight": 1, "podAffinityTerm": "x"}]}}):
        r = post(env, "bad", {"app": "web"}, affinity)
        assert r.status_code == 400, r.text
