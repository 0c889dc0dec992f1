"""StatefulSet validation: the pod template is checked as the controller will create its pods."""

from __future__ import annotations

from apiserver.registry.apps import StatefulSetStrategy


def sts(volumes: list | None = None, mount: str = "data", claims: tuple[str, ...] = ("data",)) -> dict:
    pod_spec: dict = {"containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": mount, "mountPath": "/d"}]}]}
    if volumes is not None:
        pod_spec["volumes"] = volumes
    obj = {"metadata": {"name": "db", "namespace": "ns"}, "spec": {
        "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec},
        "volumeClaimTemplates": [{"metadata": {"name": n}, "spec": {"accessModes": ["ReadWriteOnce"]}} for n in claims]}}
    StatefulSetStrategy().default(obj)
    return obj


def messages(obj: dict) -> list[str]:
    return [f"{c['field']}: {c['message']}" for c in StatefulSetStrategy().validate(obj, True)]


def test_containers_may_mount_the_claim_templates() -> None:
    assert messages(sts()) == []
    assert messages(sts(volumes=[{"name": "cfg", "emptyDir": {}}], mount="data")) == []


def test_a_mount_of_neither_a_volume_nor_a_claim_template_is_still_refused() -> None:
    assert messages(sts(mount="other")) == [
        'spec.template.spec.containers[0].volumeMounts[0].name: Not found: "other"']
    assert messages(sts(claims=())) == ['spec.template.spec.containers[0].volumeMounts[0].name: Not found: "data"']
