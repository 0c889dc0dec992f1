"""The CRD conversion webhook's checks of an answer (apiextensions' webhook converter), with a fake caller."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apimachinery import errors
from apiserver.crd.conversion import ConversionWebhook
from apiserver.webhookclient import CallError


class FakeCaller:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    async def post(self, cc: dict[str, Any], document: Any, timeout: int) -> Any:
        self.sent.append(document)
        assert timeout == 30
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer(document) if callable(self.answer) else self.answer


def obj(name: str, version: str = "v1", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": f"g.example.com/{version}", "kind": "Thing",
            "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "resourceVersion": "5", **meta},
            "spec": {"x": 1}}


def converting(edit=None):
    def answer(review: dict[str, Any]) -> dict[str, Any]:
        req = review["request"]
        out = []
        for o in req["objects"]:
            c = copy.deepcopy(o)
            c["apiVersion"] = req["desiredAPIVersion"]
            c["spec"] = {"y": o["spec"]["x"]}
            out.append(c)
        if edit is not None:
            edit(out)
        return {"apiVersion": review["apiVersion"], "kind": "ConversionReview",
                "response": {"uid": req["uid"], "result": {"status": "Success"}, "convertedObjects": out}}
    return answer


HOOK = ConversionWebhook("Thing", {"conversionReviewVersions": ["v1beta1", "v1"], "clientConfig": {"url": "https://x"}})
V2 = "g.example.com/v2"


async def test_only_objects_at_another_version_are_sent() -> None:
    caller = FakeCaller(converting())
    already = obj("b", "v2")
    out = await HOOK.convert(caller, [obj("a"), already, obj("c")], V2)  # type: ignore[arg-type]
    review = caller.sent[0]
    assert review["apiVersion"] == "apiextensions.k8s.io/v1beta1"  # the definition's first known version
    assert [o["metadata"]["name"] for o in review["request"]["objects"]] == ["a", "c"]
    assert [o["spec"] for o in out] == [{"y": 1}, {"x": 1}, {"y": 1}] and out[1] is already
    assert await HOOK.convert(caller, [already], V2) == [already]  # type: ignore[arg-type]
    assert len(caller.sent) == 1


async def test_metadata_is_the_originals_but_labels_and_annotations() -> None:
    def edit(out: list[dict[str, Any]]) -> None:
        out[0]["metadata"].update(resourceVersion="9", labels={"a": "b"}, annotations={"n": "m"}, finalizers=["x"])

    (out,) = await HOOK.convert(FakeCaller(converting(edit)), [obj("a", labels={"old": "1"})], V2)  # type: ignore[arg-type]
    assert out["metadata"] == {"name": "a", "namespace": "ns", "uid": "u-a", "resourceVersion": "5",
                               "labels": {"a": "b"}, "annotations": {"n": "m"}}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda out: out.pop(), "conversion webhook for g.example.com/v1, Kind=Thing returned 0 objects, expected 1"),
    (lambda out: out[0].update(kind="Other"), "conversion webhook for g.example.com/v1, Kind=Thing returned invalid "
                                              "object at index 0: invalid kind (expected Thing, received Other)"),
    (lambda out: out[0].update(apiVersion="g.example.com/v3"), "conversion webhook for g.example.com/v1, Kind=Thing "
     "returned invalid object at index 0: invalid groupVersion (expected g.example.com/v2, received g.example.com/v3)"),
    (lambda out: out[0]["metadata"].update(uid="z"), "conversion webhook for g.example.com/v1, Kind=Thing returned "
                                                     "invalid object: must have the same UID: u-a != z"),
    # no metadata: its name differs first (as upstream, which checks the identity before the metadata)
    (lambda out: out[0].pop("metadata"), "conversion webhook for g.example.com/v1, Kind=Thing returned invalid "
                                         "object: must have the same name: a != "),
    (lambda out: out[0]["metadata"].update(labels={"k": 1}), "conversion webhook for g.example.com/v1, Kind=Thing "
     "returned invalid metadata: metadata.labels[k] must be a string, but is int64 in converted object"),
    (lambda out: out[0]["metadata"].update(annotations=[]), "conversion webhook for g.example.com/v1, Kind=Thing "
     "returned invalid metadata: invalid metadata.annotations of type []interface {} in converted object"),
])
async def test_bad_answers_are_500s(edit, message: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        await HOOK.convert(FakeCaller(converting(edit)), [obj("a")], V2)  # type: ignore[arg-type]
    assert (e.value.code, e.value.reason, e.value.message) == (500, "", message)


async def test_failures_on_writes_are_internal_errors() -> None:
    with pytest.raises(errors.StatusError) as e:
        await HOOK.convert(FakeCaller(CallError("Post \"https://x\": boom")), [obj("a")], V2, write=True)  # type: ignore[arg-type]
    assert e.value.reason == "InternalError"
    assert e.value.message == ('Internal error occurred: conversion webhook for g.example.com/v1, Kind=Thing failed: '
                               'Post "https://x": boom')
    v1 = ConversionWebhook("Thing", {"conversionReviewVersions": ["v1"]})
    for hook, answer, text in (
            (HOOK, {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview"}, "no response provided"),
            (v1, {"response": {}}, "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, "
                                   "got /, Kind="),
            (v1, {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": {"uid": "x"}},
             'expected response.uid="')):
        with pytest.raises(errors.StatusError) as e:
            await hook.convert(FakeCaller(answer), [obj("a")], V2)  # type: ignore[arg-type]
        assert f"failed: {text}" in e.value.message


async def test_a_v1beta1_answer_is_not_held_to_its_uid_and_type() -> None:
    # upstream skips those checks for v1beta1 reviews, for compatibility with old webhooks
    def answer(review: dict[str, Any]) -> dict[str, Any]:
        out = converting()(review)
        del out["apiVersion"], out["kind"]
        out["response"]["uid"] = "whatever"
        return out

    (out,) = await HOOK.convert(FakeCaller(answer), [obj("a")], V2)  # type: ignore[arg-type]
    assert out["spec"] == {"y": 1}


async def test_converted_objects_are_pruned_by_their_new_schema() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"y": {"type": "integer"}}}}}
    hook = ConversionWebhook("Thing", {"conversionReviewVersions": ["v1"]}, {V2: schema})

    def edit(out: list[dict[str, Any]]) -> None:
        out[0]["spec"]["extra"] = "dropped"
        out[0]["junk"] = 1

    (out,) = await hook.convert(FakeCaller(converting(edit)), [obj("a")], V2)  # type: ignore[arg-type]
    assert out["spec"] == {"y": 1} and "junk" not in out


async def test_unchanged_labels_that_upstream_would_refuse_are_not_revalidated() -> None:
    # labels already stored are not judged again: only a change is validated (as upstream)
    legacy = obj("a", labels={"Bad Key": "v"})
    (out,) = await HOOK.convert(FakeCaller(converting()), [legacy], V2)  # type: ignore[arg-type]
    assert out["metadata"]["labels"] == {"Bad Key": "v"}
