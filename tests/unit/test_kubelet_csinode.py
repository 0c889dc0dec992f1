"""The kubelet's CSINode: what it creates, and how an existing one is mended."""

from __future__ import annotations

import copy

from kubelet.csinode import MIGRATED_PLUGINS, MIGRATED_PLUGINS_ANNOTATION, mended, new_csinode

NODE = {"metadata": {"name": "n1", "uid": "u-2"}}
OURS = {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u-2"}


def test_new_csinode() -> None:
    c = new_csinode(NODE)
    assert c["metadata"] == {"name": "n1", "ownerReferences": [OURS],
                             "annotations": {MIGRATED_PLUGINS_ANNOTATION: MIGRATED_PLUGINS}}
    assert c["spec"] == {"drivers": []}
    assert MIGRATED_PLUGINS.split(",") == sorted(MIGRATED_PLUGINS.split(","))


def test_a_right_csinode_is_left_alone() -> None:
    assert mended(copy.deepcopy(new_csinode(NODE)), NODE) is None


def test_an_old_owner_and_annotation_are_mended_and_the_rest_kept() -> None:
    old = {"metadata": {"name": "n1", "resourceVersion": "7", "annotations": {"a": "b", MIGRATED_PLUGINS_ANNOTATION: "x"},
                        "ownerReferences": [{**OURS, "uid": "u-1"}, {"apiVersion": "v1", "kind": "ConfigMap",
                                                                      "name": "c", "uid": "c1"}]},
           "spec": {"drivers": [{"name": "d", "nodeID": "n1"}]}}
    out = mended(old, NODE)
    assert out is not None
    assert out["metadata"]["annotations"] == {"a": "b", MIGRATED_PLUGINS_ANNOTATION: MIGRATED_PLUGINS}
    assert out["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "c1"}, OURS]
    assert out["metadata"]["resourceVersion"] == "7" and out["spec"]["drivers"] == [{"name": "d", "nodeID": "n1"}]
