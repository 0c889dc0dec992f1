"""CRD conversion webhooks (`spec.conversion.strategy: Webhook`), as apiextensions-apiserver's
webhook converter.

Objects not already at the desired version are sent in one ConversionReview (v1, else v1beta1,
whichever the definition accepts first) with a 30 s timeout; the answer must carry the request's
uid, a Success result and as many objects, each at the desired apiVersion with the same kind,
name, namespace and uid. Of a converted object's metadata only labels and annotations are taken
(validated); the rest stays the original's, so a webhook cannot rename or re-own an object.
"""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

from apimachinery import errors
from apimachinery.strategic import go_type
from apimachinery.validation import validate_annotations, validate_labels
from apiserver.crd import schema as crd_schema
from apiserver.webhookclient import CallError

if TYPE_CHECKING:
    from apiserver.webhookclient import WebhookCaller

Obj = dict[str, Any]

REVIEW_VERSIONS = ("v1", "v1beta1")
TIMEOUT = 30  # seconds (upstream's, not configurable)


class ConversionWebhook:
    def __init__(self, kind: str, webhook: Obj, schemas: dict[str, Obj] | None = None) -> None:
        self.kind = kind
        #: each version's schema by apiVersion: a converted object is pruned by its new version's
        #: (upstream's schemaCoercingConverter), so a webhook cannot store fields the schema lacks
        self.schemas = schemas or {}
        self.client_config: Obj = webhook.get("clientConfig") or {}
        self.review_version = next((v for v in webhook.get("conversionReviewVersions") or [] if v in REVIEW_VERSIONS),
                                   "v1")

    async def convert(self, caller: WebhookCaller, objs: list[Obj], desired: str, write: bool = False,
                      is_list: bool = False) -> list[Obj]:
        """`objs` at apiVersion `desired` (those already there are not sent). A failure is a 500:
        on a write as upstream's InternalError ("Internal error occurred: …"), on a read as its
        plain error (no reason). `is_list`: the objects are a list's items (upstream words the
        errors about them differently)."""
        todo = [i for i, o in enumerate(objs) if o.get("apiVersion") != desired]
        if not todo:
            return objs
        gvk = f"{objs[todo[0]].get('apiVersion')}, Kind={self.kind}{'List' if is_list else ''}"
        try:
            converted = await self._call(caller, [objs[i] for i in todo], desired, gvk, is_list)
        except ValueError as e:
            message = str(e)
            if write:
                raise errors.StatusError(500, "InternalError", f"Internal error occurred: {message}",
                                         {"causes": [{"message": message}]}) from None
            raise errors.StatusError(500, "", message) from None
        out = list(objs)
        for i, obj in zip(todo, converted, strict=True):
            out[i] = obj
        return out

    async def _call(self, caller: WebhookCaller, objects: list[Obj], desired: str, gvk: str,
                    is_list: bool) -> list[Obj]:
        uid = str(uuid.uuid4())
        api_version = f"apiextensions.k8s.io/{self.review_version}"
        review = {"apiVersion": api_version, "kind": "ConversionReview",
                  "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects}}
        prefix = f"conversion webhook for {gvk}"
        try:
            answer = await caller.post(self.client_config, review, TIMEOUT)
            results = _converted_objects(answer, api_version, uid, strict=self.review_version == "v1")
        except (CallError, ValueError) as e:
            raise ValueError(f"{prefix} failed: {e}") from None
        if len(results) != len(objects):
            raise ValueError(f"{prefix} returned {len(results)} objects, expected {len(objects)}")
        out = []
        for i, (original, result) in enumerate(zip(objects, results, strict=True)):
            # upstream's words, quirks included: a list's checks name the index after the object's
            if is_list:
                at = f"{prefix} returned invalid converted object at index {i + 1}"
                identity, metadata = at, f"{prefix} returned invalid metadata in object at index {i + 1}"
            else:
                at = f"{prefix} returned invalid object at index 0"
                identity, metadata = f"{prefix} returned invalid object", f"{prefix} returned invalid metadata"
            if not isinstance(result, dict):
                raise ValueError(f"{at[:at.rindex(' ') + 1]}{i}: not an object")
            got = result.get("apiVersion") or ""
            if got != desired:
                raise ValueError(f"{at}: invalid groupVersion (expected {desired}, received {got})")
            if result.get("kind") != original.get("kind"):
                raise ValueError(f"{at}: invalid kind (expected {original.get('kind')}, "
                                 f"received {result.get('kind') or ''})")
            problem = _identity_problem(original, result)
            if problem:
                raise ValueError(f"{identity}: {problem}")
            try:
                converted = _with_original_meta(original, result)
            except ValueError as e:
                raise ValueError(f"{metadata}: {e}") from None
            if desired in self.schemas:
                crd_schema.prune(self.schemas[desired], converted)
            out.append(converted)
        return out


def _converted_objects(answer: Any, api_version: str, uid: str, strict: bool) -> list[Any]:
    """getConvertedObjectsFromResponse; `strict` (a v1 review): the answer's apiVersion, kind and
    uid are checked too (upstream skips those for v1beta1, for compatibility)."""
    if not isinstance(answer, dict):
        raise ValueError("the response is not an object")
    if strict and (answer.get("apiVersion") != api_version or answer.get("kind") != "ConversionReview"):
        got_version = answer.get("apiVersion") or "/"
        raise ValueError(f"expected webhook response of {api_version}, Kind=ConversionReview, "
                         f"got {got_version}, Kind={answer.get('kind') or ''}")
    response = answer.get("response")
    if not isinstance(response, dict):
        raise ValueError("no response provided")
    if strict and response.get("uid") != uid:
        raise ValueError(f'expected response.uid="{uid}", got "{response.get("uid") or ""}"')
    result = response.get("result") if isinstance(response.get("result"), dict) else {}
    if result.get("status") != "Success":
        message = result.get("message")
        if isinstance(message, str) and message:
            raise ValueError(message)
        raise ValueError(f"response.result.status was '{result.get('status') or ''}', not 'Success'")
    objects = response.get("convertedObjects")
    return objects if isinstance(objects, list) else []


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _identity_problem(original: Obj, converted: Obj) -> str:
    """validateConvertedObject: what may not change in a conversion."""
    a, b = _meta(original), _meta(converted)
    for field, words in (("name", "name"), ("namespace", "namespace"), ("uid", "UID")):
        if (a.get(field) or "") != (b.get(field) or ""):
            return f"must have the same {words}: {a.get(field) or ''} != {b.get(field) or ''}"
    return ""


def _with_original_meta(original: Obj, converted: Obj) -> Obj:
    """restoreObjectMeta: the original's metadata, with the converted labels and annotations
    (validated when they changed)."""
    if "metadata" not in converted:
        raise ValueError("missing metadata in converted object")
    meta = converted["metadata"]
    if not isinstance(meta, dict):
        raise ValueError(f"invalid metadata of type {go_type(meta)} in converted object")
    restored = copy.deepcopy(_meta(original))
    for field, validate, path in (("labels", validate_labels, "metadata.labels"),
                                  ("annotations", validate_annotations, "metadata.annotation")):
        value = meta.get(field)
        if value is None:
            restored.pop(field, None)
            continue
        if not isinstance(value, dict):
            raise ValueError(f"invalid metadata.{field} of type {go_type(value)} in converted object")
        for k, v in value.items():
            if not isinstance(v, str):
                raise ValueError(f"metadata.{field}[{k}] must be a string, but is {go_type(v)} in converted object")
        if value != (restored.get(field) or {}):
            causes = validate(value, path)
            if causes:
                texts = [f"{c.get('field')}: {c.get('message')}" for c in causes]
                raise ValueError(texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]")
        restored[field] = value
    return {**converted, "metadata": restored}
