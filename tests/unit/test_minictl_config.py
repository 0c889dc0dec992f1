"""minictl's kubeconfig handling (merging $KUBECONFIG, contexts, view), manifests, apply encoding,
discovery name resolution and kubectl-style error rendering."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import yaml

from apimachinery.errors import StatusError
from certs.kubeconfig import KubeconfigError
from minictl.api import Discovery, ResourceType, ResourceTypeError, status_error_from_response
from minictl.applying import LAST_APPLIED, go_json, modified_configuration, original_configuration
from minictl.kubeconfig import KubeconfigSet, kubeconfig_paths
from minictl.manifests import ManifestError, parse_documents, read_manifests
from minictl.verbs.common import format_status_error

CA = base64.b64encode(b"not a real CA").decode()


def _config(path: Path, context: str, cluster: str, user: str, server: str, current: str | None = None,
            extra: dict | None = None) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": CA}}],
           "users": [{"name": user, "user": {"token": f"tok-{user}", **(extra or {})}}],
           "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}]}
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_env_list_merges_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _config(tmp_path / "a", "ctx-a", "c-a", "u-a", "https://127.0.0.1:1", current="ctx-b")
    b = _config(tmp_path / "b", "ctx-b", "c-b", "u-b", "https://127.0.0.1:2", current="ctx-a")
    monkeypatch.setenv("KUBECONFIG", f"{a}:{tmp_path / 'missing'}:{b}")
    assert kubeconfig_paths() == [a, b]
    configs = KubeconfigSet.load()
    assert configs.current_context == "ctx-b"  # the first file that sets it
    assert configs.context_names() == ["ctx-a", "ctx-b"]
    info = configs.info()
    assert (info.context, info.server, info.token) == ("ctx-b", "https://127.0.0.1:2", "tok-u-b")
    assert configs.info("ctx-a").server == "https://127.0.0.1:1"
    # use-context writes the file that set current-context
    assert configs.set_current_context("ctx-a") == a
    assert yaml.safe_load(a.read_text())["current-context"] == "ctx-a"
    assert yaml.safe_load(b.read_text())["current-context"] == "ctx-a"  # untouched
    with pytest.raises(KubeconfigError, match="no context exists"):
        configs.set_current_context("nope")


def test_kubeconfig_flag_wins_and_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _config(tmp_path / "a", "ctx-a", "c-a", "u-a", "https://127.0.0.1:1", current="ctx-a")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "other"))
    assert KubeconfigSet.load(a).info().context == "ctx-a"
    with pytest.raises(KubeconfigError):
        KubeconfigSet.load(tmp_path / "nope")


def test_view_redacts_and_minifies(tmp_path: Path) -> None:
    a = _config(tmp_path / "a", "ctx-a", "c-a", "u-a", "https://127.0.0.1:1", current="ctx-a",
                extra={"client-key-data": CA})
    configs = KubeconfigSet.load(a)
    view = configs.view()
    assert view["clusters"][0]["cluster"]["certificate-authority-data"] == "DATA+OMITTED"
    assert view["users"][0]["user"] == {"token": "REDACTED", "client-key-data": "DATA+OMITTED"}
    raw = configs.view(raw=True)
    assert raw["users"][0]["user"]["token"] == "tok-u-a"
    assert [c["name"] for c in configs.view(minify=True)["contexts"]] == ["ctx-a"]
    configs.set_context_namespace("ctx-a", "staging")
    assert KubeconfigSet.load(a).info().namespace == "staging"


def test_manifests_multi_document_lists_and_plain_strings(tmp_path: Path) -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data: {when: 2024-01-02, n: 1}
---
# a comment-only document is skipped
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Secret, metadata: {name: s}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
"""
    docs = parse_documents(text, "f.yaml")
    assert [d["metadata"]["name"] for d in docs] == ["a", "s", "b"]
    assert docs[0]["data"] == {"when": "2024-01-02", "n": 1}  # dates stay strings, as kubectl reads them
    assert parse_documents('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}', "x.json")[0]["kind"] == "Pod"
    with pytest.raises(ManifestError, match="'Kind' is missing"):
        parse_documents("apiVersion: v1\nmetadata: {name: x}\n", "bad.yaml")
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "1.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n")
    (d / "notes.txt").write_text("ignored")
    (d / "sub" / "2.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}}')
    assert [m.obj["metadata"]["name"] for m in read_manifests([str(d)])] == ["one"]
    assert [m.obj["metadata"]["name"] for m in read_manifests([str(d)], recursive=True)] == ["one", "two"]
    with pytest.raises(ManifestError, match="local files only"):
        read_manifests(["https://example.com/x.yaml"])
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifests([str(tmp_path / "missing.yaml")])


def test_last_applied_annotation_is_encoded_exactly_like_kubectl() -> None:
    # captured from kubectl 1.37: `kubectl apply` of this ConfigMap in namespace demo
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "labels": {"x": "1"}, "namespace": "demo"},
           "data": {"k": "v & <b>"}}
    modified, text = modified_configuration(obj)
    assert text == ('{"apiVersion":"v1","data":{"k":"v \\u0026 \\u003cb\\u003e"},"kind":"ConfigMap","metadata":'
                    '{"annotations":{},"labels":{"x":"1"},"name":"b","namespace":"demo"}}\n')
    assert modified["metadata"]["annotations"] == {LAST_APPLIED: text}
    assert original_configuration(modified) == {**obj, "metadata": {**obj["metadata"], "annotations": {}}}
    assert go_json({"a": "\u2028é"}) == '{"a":"\\u2028é"}'
    # an earlier last-applied value never nests into the new one
    again, text2 = modified_configuration(modified)
    assert text2 == text and again == modified


class _FakeApi:
    server = "https://127.0.0.1:6443"

    def __init__(self) -> None:
        self.calls = 0
        self.items = [
            {"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
                {"resource": "pods", "responseKind": {"kind": "Pod"}, "scope": "Namespaced", "singularResource": "pod",
                 "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"],
                 "subresources": [{"subresource": "log"}, {"subresource": "exec"}]},
                {"resource": "events", "responseKind": {"kind": "Event"}, "scope": "Namespaced",
                 "singularResource": "event", "verbs": ["list"], "shortNames": ["ev"]},
                {"resource": "nodes", "responseKind": {"kind": "Node"}, "scope": "Cluster", "singularResource": "node",
                 "verbs": ["list"], "shortNames": ["no"]}]}]},
        ]
        self.groups = [
            {"metadata": {"name": "events.k8s.io"}, "versions": [{"version": "v1", "resources": [
                {"resource": "events", "responseKind": {"kind": "Event"}, "scope": "Namespaced",
                 "singularResource": "event", "verbs": ["list"], "shortNames": ["ev"]}]}]},
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                {"resource": "deployments", "responseKind": {"kind": "Deployment"}, "scope": "Namespaced",
                 "singularResource": "deployment", "verbs": ["get"], "shortNames": ["deploy"], "categories": ["all"],
                 "subresources": [{"subresource": "scale"}]}]}]},
        ]

    def request(self, method: str, path: str, headers: dict | None = None):
        self.calls += 1
        doc = {"kind": "APIGroupDiscoveryList", "items": self.items if path == "/api" else self.groups}

        class R:
            def json(self):
                return doc

        return R()


def test_discovery_resolves_names_like_kubectl_and_caches(tmp_path: Path) -> None:
    api = _FakeApi()
    d = Discovery(api, cache_dir=tmp_path)  # type: ignore[arg-type]
    assert d.resolve("po").plural == "pods"
    assert d.resolve("Pod").plural == "pods"
    assert d.resolve("pods").subresources == ("log", "exec")
    assert d.resolve("events").group == ""  # the legacy group first
    assert d.resolve("events.events.k8s.io").group == "events.k8s.io"
    assert d.resolve("deploy").group_resource == "deployments.apps"
    assert d.resolve("deployments.apps").kind_name == "deployment.apps"
    assert d.resolve("deployments.v1.apps").api_version == "apps/v1"
    assert d.for_kind("apps/v1", "Deployment").plural == "deployments"
    assert [t.plural for t in d.category("all")] == ["pods", "deployments"]
    assert not d.resolve("nodes").namespaced
    calls = api.calls
    # a second process within the TTL reads the cache, no requests
    d2 = Discovery(api, cache_dir=tmp_path)  # type: ignore[arg-type]
    assert d2.resolve("deploy").plural == "deployments" and api.calls == calls
    # an unknown name refreshes once, then fails with kubectl's message
    with pytest.raises(ResourceTypeError, match='the server doesn\'t have a resource type "foos"'):
        d2.resolve("foos")
    assert api.calls == calls + 2
    # a stale cache is refetched
    doc = json.loads(d2.cache_file.read_text())
    doc["fetched"] = time.time() - 3600
    d2.cache_file.write_text(json.dumps(doc))
    Discovery(api, cache_dir=tmp_path).resolve("po")  # type: ignore[arg-type]
    assert api.calls == calls + 4
    t = ResourceType("apps", "v1", "deployments", "Deployment", True)
    assert t.path("ns", "a b", "scale") == "/apis/apps/v1/namespaces/ns/deployments/a%20b/scale"
    assert ResourceType("", "v1", "nodes", "Node", False).path("ignored", "n1") == "/api/v1/nodes/n1"


def test_errors_render_like_kubectl() -> None:
    nf = status_error_from_response(404, json.dumps({"kind": "Status", "status": "Failure", "reason": "NotFound",
                                                     "message": 'pods "x" not found', "code": 404}).encode())
    assert format_status_error(nf) == 'Error from server (NotFound): pods "x" not found'
    assert format_status_error(nf, 'error when creating "f.yaml": ') == \
        'Error from server (NotFound): error when creating "f.yaml": pods "x" not found'
    plain = status_error_from_response(404, b"404 page not found")
    assert format_status_error(plain) == "Error from server (NotFound): the server could not find the requested resource"
    invalid = StatusError(422, "Invalid", "...", {"kind": "Deployment", "name": "x", "causes": [
        {"field": "spec.replicas", "message": "Invalid value: -1: must be greater than or equal to 0"}]})
    assert format_status_error(invalid) == \
        'The Deployment "x" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    invalid.details["causes"].append({"field": "metadata.name", "message": "Required value"})
    assert format_status_error(invalid) == ('The Deployment "x" is invalid: \n'
                                            "* spec.replicas: Invalid value: -1: must be greater than or equal to 0\n"
                                            "* metadata.name: Required value")
    assert format_status_error(StatusError(500, "", "boom")) == "Error from server: boom"
