"""OpenAPI v3 documents for custom resources (what `kubectl explain` and client-side tools read).

Each served version of a definition becomes `/openapi/v3/apis/<group>/<version>`: the
definition's schema under upstream's name (`com.example.stable.v1.CronTab`, the group reversed)
with the standard apiVersion/kind/metadata fields, its List kind, and the same paths and
operations the built-in kinds get (apiserver.openapi_gen builds both).
"""

from __future__ import annotations

from typing import Any

import orjson

from apiserver.openapi_gen import _gv_root_path, _resource_paths, render_paths, v3_document
from apiserver.resources import Resource

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
SCALE = "io.k8s.api.autoscaling.v1.Scale"
#: A small built-in document that carries every meta/v1 definition the paths refer to.
META_SOURCE = "apis/coordination.k8s.io/v1"
#: ... and one that carries autoscaling/v1 Scale (deployments/scale).
SCALE_SOURCE = "apis/apps/v1"

API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                   "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
                   "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
                   "api-conventions.md#resources")
KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer "
            "this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
            "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")
METADATA_DOC = ("Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/"
                "sig-architecture/api-conventions.md#metadata")


def definition_name(group: str, version: str, kind: str) -> str:
    return ".".join([*reversed(group.split(".")), version, kind])


def base_definitions(builtin_v3: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """meta/v1 and Scale definitions taken from the built-in documents, in swagger-2 form
    (refs as #/definitions/, as openapi_gen's builders expect)."""
    defs: dict[str, dict[str, Any]] = {}
    for key, wanted in ((META_SOURCE, lambda n: n.startswith(META) or n.startswith("io.k8s.apimachinery.")),
                        (SCALE_SOURCE, lambda n: n.startswith(SCALE))):
        body = builtin_v3.get(key)
        if body is None:
            continue
        text = body.decode().replace("#/components/schemas/", "#/definitions/")
        for name, schema in orjson.loads(text)["components"]["schemas"].items():
            if wanted(name):
                defs[name] = schema
    return defs


def _gvk(group: str, version: str, kind: str) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind, "version": version}]


def _kind_schema(schema: dict[str, Any] | None, group: str, version: str, kind: str) -> dict[str, Any]:
    out = orjson.loads(orjson.dumps(schema or {"type": "object"}))
    props = out.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": KIND_DOC}
    props["metadata"] = {"$ref": f"#/definitions/{META}ObjectMeta", "description": METADATA_DOC}
    out.setdefault("type", "object")
    out["x-kubernetes-group-version-kind"] = _gvk(group, version, kind)
    return out


def _list_schema(item: str, group: str, version: str, kind: str, list_kind: str) -> dict[str, Any]:
    return {
        "description": f"{list_kind} is a list of {kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "items": {"type": "array", "items": {"$ref": f"#/definitions/{item}"},
                      "description": f"List of {kind.lower()}s. More info: "
                                     "https://git.k8s.io/community/contributors/devel/sig-architecture/"
                                     "api-conventions.md"},
            "kind": {"type": "string", "description": KIND_DOC},
            "metadata": {"$ref": f"#/definitions/{META}ListMeta",
                         "description": "Standard list metadata. More info: "
                                        "https://git.k8s.io/community/contributors/devel/sig-architecture/"
                                        "api-conventions.md#types-kinds"},
        },
        "x-kubernetes-group-version-kind": _gvk(group, version, list_kind),
    }


def gv_document(group: str, version: str, served: list[tuple[dict[str, Any], Resource]],
                base: dict[str, dict[str, Any]]) -> str:
    """The document of one custom group version: every definition served there (`served` pairs a
    definition with its row for this version)."""
    defs = dict(base)
    paths = dict([_gv_root_path(group, version)])
    for crd, r in served:
        names = (crd.get("status") or {}).get("acceptedNames") or crd["spec"]["names"]
        list_kind = names.get("listKind") or names["kind"] + "List"
        schema = next((v.get("schema") or {} for v in crd["spec"].get("versions") or [] if v.get("name") == version),
                      {}).get("openAPIV3Schema")
        kind_def = definition_name(group, version, r.kind)
        list_def = definition_name(group, version, list_kind)
        defs[kind_def] = _kind_schema(schema, group, version, r.kind)
        defs[list_def] = _list_schema(kind_def, group, version, r.kind, list_kind)
        paths.update(_resource_paths(r, kind_def, list_def, {"scale": SCALE} if SCALE in defs else {}))
    return v3_document(render_paths(paths, True), defs)
