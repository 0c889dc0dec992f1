"""Container environments: $(VAR) expansion, service links, envFrom, valueFrom, the downward API."""

import base64

import pytest

from kubelet.downward import DownwardError, field_value, format_map, resource_value
from kubelet.envvars import EnvBuilder, EnvError, expand, service_env


def test_expansion_rules():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$(A", env) == "$(A"
    assert expand("cost: $5 $", env) == "cost: $5 $"
    assert expand("$$$(A)", env) == "$1"


def test_service_links():
    svc = {"metadata": {"name": "my-db"}, "spec": {"clusterIP": "10.96.0.20", "ports": [
        {"name": "sql", "port": 5432, "protocol": "TCP"}, {"name": "metrics", "port": 9000, "protocol": "UDP"}]}}
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    env = service_env([svc, headless])
    assert env["MY_DB_SERVICE_HOST"] == "10.96.0.20" and env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_SERVICE_PORT_SQL"] == "5432" and env["MY_DB_SERVICE_PORT_METRICS"] == "9000"
    assert env["MY_DB_PORT"] == "tcp://10.96.0.20:5432"
    assert env["MY_DB_PORT_9000_UDP"] == "udp://10.96.0.20:9000" and env["MY_DB_PORT_9000_UDP_ADDR"] == "10.96.0.20"
    assert not any(k.startswith("H_") for k in env)


POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"b": "2", "a": 'say "hi"'},
                 "annotations": {}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
    "status": {"podIPs": [{"ip": "10.0.0.1"}]},
}


def test_field_values():
    assert field_value(POD, "metadata.name") == "p"
    assert field_value(POD, "metadata.labels['b']") == "2"
    assert field_value(POD, "metadata.labels") == 'a="say \\"hi\\""\nb="2"'
    assert field_value(POD, "status.podIP") == "10.0.0.1"
    assert field_value(POD, "status.podIPs", pod_ips=["10.0.0.2", "fd00::2"]) == "10.0.0.2,fd00::2"
    assert field_value(POD, "status.hostIP", host_ip="192.0.2.1") == "192.0.2.1"
    assert field_value(POD, "spec.serviceAccountName") == "sa"
    with pytest.raises(DownwardError):
        field_value(POD, "spec.containers")
    assert format_map({}) == ""


def test_resource_values_round_up_and_default_to_allocatable():
    c = {"resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}}
    assert resource_value(c, "limits.cpu", None, {}) == "1"
    assert resource_value(c, "limits.cpu", "1m", {}) == "500"
    assert resource_value(c, "requests.cpu", "1m", {}) == "250"
    assert resource_value(c, "limits.memory", "1Mi", {}) == "64"
    assert resource_value({}, "limits.memory", "1", {"memory": 1000}) == "1000"
    with pytest.raises(DownwardError):
        resource_value(c, "limits", None, {})


async def test_env_builder_order_and_errors():
    objects = {
        ("configmap", "cm"): {"data": {"k": "v", "1bad": "x", "SHARED": "from-cm"}},
        ("secret", "s"): {"data": {"pw": base64.b64encode(b"hunter2").decode()}},
    }

    async def cm(ns, name):
        return objects.get(("configmap", name))

    async def secret(ns, name):
        return objects.get(("secret", name))

    builder = EnvBuilder(cm, secret)
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "absent", "optional": True}}],
        "env": [
            {"name": "SHARED", "value": "from-env"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "REF", "value": "$(PW)/$(k)/$(SVC_SERVICE_HOST)"},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "none", "optional": True}}},
        ],
    }
    env, warnings = await builder.build(POD, container, {"SVC_SERVICE_HOST": "10.96.0.3"}, "", [], {})
    values = dict(env)
    assert values["SHARED"] == "from-env" and values["PW"] == "hunter2"
    assert values["REF"] == "hunter2/v/10.96.0.3"
    assert "OPT" not in values and "1bad" not in values
    assert "1bad" in warnings[0]
    assert [k for k, _ in env][-1] == "SVC_SERVICE_HOST"  # service variables come last, unless overridden
    with pytest.raises(EnvError, match='configmap "nope" not found'):
        await builder.build(POD, {"name": "c", "envFrom": [{"configMapRef": {"name": "nope"}}]}, {}, "", [], {})
    with pytest.raises(EnvError, match="couldn't find key missing in ConfigMap ns/cm"):
        await builder.build(POD, {"name": "c", "env": [{"name": "X", "valueFrom": {
            "configMapKeyRef": {"name": "cm", "key": "missing"}}}]}, {}, "", [], {})
