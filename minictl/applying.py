"""`apply` mechanics, kubectl-compatible so kubectl and minictl can take turns on the same objects.

Client-side apply keeps the previous configuration in the
``kubectl.kubernetes.io/last-applied-configuration`` annotation, encoded exactly as kubectl
encodes it (Go's JSON: sorted keys, HTML-escaped, a trailing newline, ``"annotations":{}``
when the file had none), and sends a three-way strategic merge patch
(``apimachinery.strategic_diff``) — or a JSON merge patch for kinds without patch metadata.
Server-side apply sends the object as ``application/apply-patch+yaml``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from apimachinery.errors import StatusError
from apimachinery.strategic import schema_for
from apimachinery.strategic_diff import (
    StrategicMergePatchError,
    create_three_way_json_merge_patch,
    create_three_way_patch,
)
from minictl.api import Api, ResourceType

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CLIENT_SIDE_MANAGER = "kubectl-client-side-apply"
SERVER_SIDE_MANAGER = "kubectl"
MAX_PATCH_RETRIES = 5

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(obj: Any) -> str:
    """encoding/json's Marshal: sorted keys, compact, <>& and U+2028/9 escaped, UTF-8 kept."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in _GO_ESCAPES.items():
        if ch in text:
            text = text.replace(ch, esc)
    return text


def modified_configuration(obj: dict[str, Any], annotate: bool = True) -> tuple[dict[str, Any], str]:
    """kubectl's GetModifiedConfiguration: the object as it will be applied (with the new
    last-applied annotation when `annotate`) and the annotation's text."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    meta["annotations"] = annotations
    text = go_json(obj) + "\n"
    if annotate:
        meta["annotations"] = {**annotations, LAST_APPLIED: text}
    return obj, text


def original_configuration(live: dict[str, Any]) -> dict[str, Any] | None:
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def three_way_patch(original: dict | None, modified: dict, current: dict) -> tuple[dict, str]:
    """(patch, content type) kubectl sends for this original / modified / current triple."""
    schema = schema_for(modified.get("apiVersion", ""), modified.get("kind", ""))
    if schema is None:
        return create_three_way_json_merge_patch(original, modified, current), MERGE
    return create_three_way_patch(original, modified, current, schema), STRATEGIC


@dataclass
class ApplyResult:
    action: str  # created | configured | unchanged | serverside-applied
    obj: dict[str, Any]
    warning: str = ""


class NamespaceMismatch(ValueError):
    pass


def set_namespace(obj: dict[str, Any], rtype: ResourceType, namespace: str, explicit: bool) -> str | None:
    """Fill in the namespace of a namespaced object as kubectl does; None for cluster-scoped kinds."""
    if not rtype.namespaced:
        return None
    meta = obj.setdefault("metadata", {})
    own = meta.get("namespace")
    if own and explicit and own != namespace:
        raise NamespaceMismatch(
            f'error: the namespace from the provided object "{own}" does not match the namespace "{namespace}". '
            f"You must pass '--namespace={own}' to perform this operation.")
    meta["namespace"] = own or namespace
    return meta["namespace"]


def client_side_apply(api: Api, rtype: ResourceType, obj: dict[str, Any], namespace: str | None,
                      dry_run: str | None = None, field_manager: str = CLIENT_SIDE_MANAGER) -> ApplyResult:
    """Create the object with its last-applied annotation, or patch it three-way."""
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise StatusError(400, "BadRequest", "resource name may not be empty")
    modified, _ = modified_configuration(obj)
    params: dict[str, Any] = {"fieldManager": field_manager, "fieldValidation": "Strict"}
    if dry_run == "server":
        params["dryRun"] = "All"
    for attempt in range(MAX_PATCH_RETRIES):
        try:
            current = api.get(rtype.path(namespace, name))
        except StatusError as e:
            if e.code != 404:
                raise
            if dry_run == "client":
                return ApplyResult("created", modified)
            try:
                created = api.send("POST", rtype.path(namespace), modified, params)
            except StatusError as e:
                e.operation = "creating"  # type: ignore[attr-defined]
                raise
            return ApplyResult("created", created)
        original = original_configuration(current)
        warning = ""
        if LAST_APPLIED not in ((current.get("metadata") or {}).get("annotations") or {}):
            warning = (f"Warning: resource {rtype.group_resource}/{name} is missing the {LAST_APPLIED} annotation "
                       "which is required by minictl apply (and kubectl apply). apply should only be used on resources "
                       "created declaratively by either create --save-config or apply. The missing annotation will "
                       "be patched automatically.")
        try:
            patch, content_type = three_way_patch(original, modified, current)
        except StrategicMergePatchError as e:
            raise StatusError(400, "BadRequest", f"creating patch with:\noriginal:\n{go_json(original)}\n"
                                                 f"modified:\n{go_json(modified)}\ncurrent:\n{go_json(current)}\n"
                                                 f"for: {e}") from None
        if not patch:
            return ApplyResult("unchanged", current, warning)
        if dry_run == "client":
            return ApplyResult("configured", current, warning)
        try:
            patched = api.send("PATCH", rtype.path(namespace, name), patch, params, content_type=content_type)
        except StatusError as e:
            if e.code == 409 and attempt + 1 < MAX_PATCH_RETRIES:
                continue
            e.operation = "patching"  # type: ignore[attr-defined]
            raise
        return ApplyResult("configured", patched, warning)
    raise AssertionError("unreachable")


def server_side_apply(api: Api, rtype: ResourceType, obj: dict[str, Any], namespace: str | None,
                      field_manager: str = SERVER_SIDE_MANAGER, force: bool = False,
                      dry_run: str | None = None) -> ApplyResult:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise StatusError(400, "BadRequest", "resource name may not be empty")
    params: dict[str, Any] = {"fieldManager": field_manager, "fieldValidation": "Strict"}
    if force:
        params["force"] = "true"
    if dry_run == "server":
        params["dryRun"] = "All"
    if dry_run == "client":
        return ApplyResult("serverside-applied", obj)
    result = api.send("PATCH", rtype.path(namespace, name), content=go_json(obj).encode(), params=params,
                      content_type=APPLY)
    return ApplyResult("serverside-applied", result)


CONFLICT_HINT = """
Please review the fields above--they currently have other managers. Here
are the ways you can resolve this warning:
* If you intend to manage all of these fields, please re-run the apply
  command with the `--force-conflicts` flag.
* If you do not intend to manage all of the fields, please edit your
  manifest to remove references to the fields that should keep their
  current managers.
* You may co-own fields by updating your manifest to match the existing
  value; in this case, you'll become the manager if the other manager(s)
  stop managing the field (remove it from their configuration).
See https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts"""
