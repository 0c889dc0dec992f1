"""Pod (anti-)affinity terms: upstream's validation of a term, and matchLabelKeys /
mismatchLabelKeys (KEP-3633) merged into the term's labelSelector when a pod is created."""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.core import PodStrategy
from apiserver.registry.podspec import validate_pod_spec

ST = PodStrategy()
REQ = "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
HOST = "kubernetes.io/hostname"


def term(**fields: Any) -> dict[str, Any]:
    return {"topologyKey": HOST, "labelSelector": {"matchLabels": {"app": "web"}}, **fields}


def pod(affinity: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web", "rev": "2"} if labels is None
                         else labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "affinity": affinity}}


def create(obj: dict[str, Any]) -> dict[str, str]:
    """What the apiserver does with a new pod before storing it: prepare, default, validate →
    {field: message} of the causes (the object is changed in place)."""
    ST.prepare_for_create(obj)
    ST.default(obj)
    return {c["field"]: c["message"] for c in ST.validate(obj, True)}


def required(*terms: dict[str, Any], anti: bool = False) -> dict[str, Any]:
    return {"podAntiAffinity" if anti else "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                                            list(terms)}}


def test_label_keys_become_in_and_not_in_requirements_on_the_pods_values() -> None:
    affinity = {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term(matchLabelKeys=["rev", "missing"],
                 labelSelector={"matchLabels": {"app": "web"},
                                "matchExpressions": [{"key": "tier", "operator": "Exists"}]})]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": term(mismatchLabelKeys=["app"])}]},
    }
    obj = pod(affinity)
    assert create(obj) == {}
    got = obj["spec"]["affinity"]
    assert got["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"] == {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "Exists"},
                             {"key": "rev", "operator": "In", "values": ["2"]}]}  # "missing": no such label
    weighted = got["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert weighted["labelSelector"] == {"matchLabels": {"app": "web"},
                                         "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}
    assert weighted["mismatchLabelKeys"] == ["app"]  # the keys stay in the term
    # the stored pod validates again on update: a merged key appears once in the selector
    obj["metadata"]["resourceVersion"] = "7"
    assert ST.validate_update(copy.deepcopy(obj), obj, True) == []


def test_a_pod_without_the_labels_or_a_term_without_selector_is_left_alone() -> None:
    obj = pod(required(term(matchLabelKeys=["rev"])), labels={})
    assert create(obj) == {}
    assert "matchExpressions" not in obj["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]
    obj = pod(required(term(matchLabelKeys=["rev"], labelSelector=None)))
    assert create(obj) == {f"{REQ}.matchLabelKeys": "Forbidden: must not be specified when labelSelector is not set"}
    assert obj["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0][
        "labelSelector"] is None


def test_a_key_also_in_the_users_selector_is_invalid() -> None:
    msg = 'Invalid value: "rev": exists in both matchLabelKeys and labelSelector'
    # (upstream's path: the term's, indexed by the key's place in matchLabelKeys)
    assert create(pod(required(term(matchLabelKeys=["x", "rev"], labelSelector={"matchLabels": {"rev": "1"}})))) == {
        f"{REQ}[1]": msg}
    def in_expressions() -> dict[str, Any]:
        return {"matchExpressions": [{"key": "rev", "operator": "In", "values": ["1"]}]}

    assert create(pod(required(term(matchLabelKeys=["rev"], labelSelector=in_expressions())))) == {f"{REQ}[0]": msg}
    # the pod has no such label: nothing is merged, nothing is duplicated
    assert create(pod(required(term(matchLabelKeys=["rev"], labelSelector=in_expressions())), labels={})) == {}
    # mismatchLabelKeys may narrow a key the selector names
    assert create(pod(required(term(mismatchLabelKeys=["rev"], labelSelector=in_expressions())))) == {}


def test_a_key_in_both_lists_is_invalid() -> None:
    got = create(pod(required(term(matchLabelKeys=["app", "rev"], mismatchLabelKeys=["rev"]), anti=True)))
    anti_req = REQ.replace("podAffinity", "podAntiAffinity")
    assert got == {
        f"{anti_req}.matchLabelKeys[1]": 'Invalid value: "rev": exists in both matchLabelKeys and mismatchLabelKeys',
        # merged as In and NotIn, the key is twice in the selector, as upstream reports too
        f"{anti_req}[1]": 'Invalid value: "rev": exists in both matchLabelKeys and labelSelector',
        # "app" was in matchLabels already
        f"{anti_req}[0]": 'Invalid value: "app": exists in both matchLabelKeys and labelSelector'}


def test_keys_must_be_label_keys() -> None:
    got = create(pod(required(term(matchLabelKeys=["a b"], mismatchLabelKeys=["example.com/ok", "/x"]))))
    assert got == {
        f"{REQ}.matchLabelKeys[0]": "Invalid value: \"a b\": name part must consist of alphanumeric characters, "
                                    "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                                    "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                                    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        f"{REQ}.mismatchLabelKeys[1]": 'Invalid value: "/x": prefix part must be non-empty'}


def test_the_rest_of_a_term_as_upstream() -> None:
    causes = validate_pod_spec({
        "containers": [{"name": "c", "image": "x"}],
        "affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchExpressions": [{"key": "k", "operator": "Has"}]}, "topologyKey": "",
                 "namespaces": ["Bad_NS"]}],
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 0, "podAffinityTerm": {"topologyKey": "zone", "namespaceSelector": {
                    "matchLabels": {"bad key": "v"}}}}]}}})
    req = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
    pref = "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
    assert [(c["field"], c["message"].split(":")[0]) for c in causes] == [
        (f"{req}.labelSelector.matchExpressions[0].operator", "Invalid value"),
        (f"{req}.namespace", "Invalid value"),
        (f"{req}.topologyKey", "Required value"),
        (f"{req}.topologyKey", "Invalid value"),  # "" is no label key either
        (f"{req}.topologyKey", "Invalid value"),
        (f"{pref}.weight", "Invalid value"),
        (f"{pref}.podAffinityTerm.namespaceSelector.matchLabels", "Invalid value"),
    ]
    assert causes[2]["message"] == "Required value: can not be empty"
    assert causes[5]["message"] == "Invalid value: 0: must be in the range 1-100"
