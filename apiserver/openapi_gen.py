"""Build the OpenAPI v2/v3 documents and the unknown-field prune tree from the official client.

Run as ``python -m apiserver.openapi_gen --out FILE``. The type information comes from the
installed ``kubernetes`` package (its pydantic models carry the JSON names, types, required
flags and descriptions of upstream's definitions); importing those models costs ~40 MB, so the
apiserver runs this in a subprocess once and serves the cached result (see apiserver.openapi).

The output is one JSON object:

* ``v2``: the swagger 2.0 document, pre-serialized (a string), with its ``v2_etag``, and
  ``v2_pb``: the same document as gnostic's protobuf (base64);
* ``v3``: ``{"api/v1": {"doc": str, "hash": str}, "apis/apps/v1": ...}``, one OpenAPI 3.0
  document per served group-version (the hash is upstream's: SHA-512 of the bytes, upper hex);
* ``prune``: a slim tree for unknown-field detection: ``types`` maps a definition name to
  ``{"p": {field: node}}``; a node is a scalar kind (``"s"`` string, ``"i"`` integer, ``"n"``
  number, ``"b"`` boolean, ``"q"`` int-or-string/quantity, ``0`` any scalar), ``1``
  (free-form, keep everything), a definition name, ``{"a": node}`` (array) or ``{"m": node}``
  (map); ``kinds`` maps
  ``"<apiVersion>/<kind>"`` (``"v1/Pod"``, ``"apps/v1/Deployment"``) to its definition;
* ``issues``: what could not be described (kinds without a model, patch metadata naming fields
  the models lack), also printed on stderr.

What the models lose is put back from tables below: Quantity, MicroTime, RawExtension/FieldsV1
and IntOrString fields. Patch extensions come from apimachinery.strategic (the table the
server's own strategic merge patch uses); list-type/list-map-keys are derived from them.
The models carry no descriptions for fields whose type is another definition (the client's
generator drops them: `spec`, `status`, `strategy.rollingUpdate`…); those come from the
docstrings of the `lightkube-models` package (generated from upstream's OpenAPI too), read as
text — its classes are never imported.

Upstream's definition names (``io.k8s.api.apps.v1.Deployment``) are recovered from the model
class names (``V1Deployment``): the version is in the name, the group comes from the API
module whose operations use the kind (a nested type belongs to the group of the first kind of
the same version that reaches it, core first), the meta/v1 types are listed below.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import inspect
import os
import re
import sys
import tempfile
import time
import types
import typing
from pathlib import Path
from typing import Any

import orjson

from apimachinery import strategic
from apiserver.resources import (
    PROXY_OPTION_KINDS,
    SUBRESOURCE_KINDS,
    SUBRESOURCE_VERBS,
    Resource,
    ResourceTable,
)

#: Bump when the output format changes (the source hash below covers code changes too).
GENERATOR_VERSION = 2

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = META + "Time"
MICRO_TIME = META + "MicroTime"
DURATION = META + "Duration"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"
FIELDS_V1 = META + "FieldsV1"
PATCH = META + "Patch"
STATUS = META + "Status"
DELETE_OPTIONS = META + "DeleteOptions"
WATCH_EVENT = META + "WatchEvent"
API_RESOURCE_LIST = META + "APIResourceList"

#: Types of k8s.io/apimachinery/pkg/apis/meta/v1 that the client has models for.
META_TYPES = frozenset({
    "APIGroup", "APIGroupList", "APIResource", "APIResourceList", "APIVersions", "Condition", "DeleteOptions",
    "FieldSelectorRequirement", "GroupVersionForDiscovery", "LabelSelector", "LabelSelectorRequirement",
    "ListMeta", "ManagedFieldsEntry", "ObjectMeta", "OwnerReference", "Preconditions",
    "ServerAddressByClientCIDR", "Status", "StatusCause", "StatusDetails", "WatchEvent",
})

#: Meta kinds a client may meet in any group-version (upstream lists every such GVK).
PER_GROUP_META_KINDS = ("DeleteOptions", "WatchEvent")

#: core/v1 types that only other groups' kinds use (the group walk would misplace them).
CORE_ONLY_FROM_OTHER_GROUPS = frozenset({"TopologySelectorTerm", "TopologySelectorLabelRequirement"})

#: Fields whose Go type is resource.Quantity (the client declares them plain strings).
QUANTITY_FIELDS: dict[str, frozenset[str]] = {
    "io.k8s.api.autoscaling.v2.HPAScalingRules": frozenset({"tolerance"}),
    "io.k8s.api.autoscaling.v2.MetricTarget": frozenset({"averageValue", "value"}),
    "io.k8s.api.autoscaling.v2.MetricValueStatus": frozenset({"averageValue", "value"}),
    "io.k8s.api.core.v1.ContainerStatus": frozenset({"allocatedResources"}),
    "io.k8s.api.core.v1.EmptyDirVolumeSource": frozenset({"sizeLimit"}),
    "io.k8s.api.core.v1.LimitRangeItem": frozenset({"default", "defaultRequest", "max", "maxLimitRequestRatio",
                                                    "min"}),
    "io.k8s.api.core.v1.NodeStatus": frozenset({"allocatable", "capacity"}),
    "io.k8s.api.core.v1.PersistentVolumeClaimStatus": frozenset({"allocatedResources", "capacity"}),
    "io.k8s.api.core.v1.PersistentVolumeSpec": frozenset({"capacity"}),
    "io.k8s.api.core.v1.PodSpec": frozenset({"overhead"}),
    "io.k8s.api.core.v1.PodStatus": frozenset({"allocatedResources"}),
    "io.k8s.api.core.v1.ResourceFieldSelector": frozenset({"divisor"}),
    "io.k8s.api.core.v1.ResourceQuotaSpec": frozenset({"hard"}),
    "io.k8s.api.core.v1.ResourceQuotaStatus": frozenset({"hard", "used"}),
    "io.k8s.api.core.v1.ResourceRequirements": frozenset({"limits", "requests"}),
    "io.k8s.api.core.v1.VolumeResourceRequirements": frozenset({"limits", "requests"}),
}

#: Fields whose Go type is metav1.MicroTime (the client says datetime, like metav1.Time).
MICRO_TIME_FIELDS: dict[str, frozenset[str]] = {
    "io.k8s.api.coordination.v1.LeaseSpec": frozenset({"acquireTime", "renewTime"}),
    "io.k8s.api.core.v1.Event": frozenset({"eventTime"}),
    "io.k8s.api.core.v1.EventSeries": frozenset({"lastObservedTime"}),
    "io.k8s.api.events.v1.Event": frozenset({"eventTime"}),
    "io.k8s.api.events.v1.EventSeries": frozenset({"lastObservedTime"}),
}

#: Free-form fields (the client says `object`) that hold an embedded object or raw JSON.
RAW_FIELDS: dict[str, dict[str, str]] = {
    "io.k8s.api.apps.v1.ControllerRevision": {"data": RAW_EXTENSION},
    META + "WatchEvent": {"object": RAW_EXTENSION},
    META + "ManagedFieldsEntry": {"fieldsV1": FIELDS_V1},
}

#: list-type / extra list-map-keys where upstream's +listType/+listMapKey tags differ from what
#: the patch strategy implies (merge + key → map keyed by the merge key; merge alone → set).
LIST_MAP_KEYS: dict[tuple[str, str], list[str]] = {
    ("io.k8s.api.core.v1.Container", "ports"): ["containerPort", "protocol"],
    ("io.k8s.api.core.v1.EphemeralContainer", "ports"): ["containerPort", "protocol"],
    ("io.k8s.api.core.v1.ServiceSpec", "ports"): ["port", "protocol"],
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints"): ["topologyKey", "whenUnsatisfiable"],
}
LIST_TYPE_OVERRIDES: dict[tuple[str, str], str] = {
    ("io.k8s.api.batch.v1.JobStatus", "conditions"): "atomic",
    ("io.k8s.api.core.v1.PodStatus", "hostIPs"): "atomic",
}

#: Definitions the client has no model for (scalars with Kubernetes semantics and raw JSON).
SYNTHETIC_DEFINITIONS: dict[str, dict[str, Any]] = {
    QUANTITY: {
        "type": "string",
        "description": "A fixed-point number with an optional suffix (binary SI such as Ki, Mi, Gi; decimal SI "
                       "such as k, M, G, m; or a decimal exponent such as e3), e.g. \"100m\", \"1.5Gi\", \"2\". "
                       "Serialized as a string; numbers are accepted on input.",
    },
    INT_OR_STRING: {
        "type": "string", "format": "int-or-string",
        "description": "Either an integer or a string (for example a port number or name, or a percentage).",
    },
    TIME: {
        "type": "string", "format": "date-time",
        "description": "A timestamp in RFC 3339 form with second precision, e.g. \"2024-01-02T15:04:05Z\".",
    },
    MICRO_TIME: {
        "type": "string", "format": "date-time",
        "description": "A timestamp in RFC 3339 form with microsecond precision.",
    },
    DURATION: {
        "type": "string",
        "description": "A duration in Go's time.Duration form, e.g. \"15s\", \"1m30.5s\", \"250ms\".",
    },
    RAW_EXTENSION: {
        "type": "object",
        "description": "An embedded object of any kind, kept as the JSON it was written with.",
    },
    FIELDS_V1: {
        "type": "object",
        "description": "A set of field paths in the FieldsV1 trie format (keys such as \"f:spec\", \"k:{...}\").",
    },
    PATCH: {
        "type": "object",
        "description": "The body of a PATCH request; its format is given by the request's Content-Type.",
    },
}

_LEAF_DEFINITIONS = frozenset({QUANTITY, INT_OR_STRING, TIME, MICRO_TIME, DURATION})
_FREE_FORM_DEFINITIONS = frozenset({RAW_EXTENSION, FIELDS_V1, PATCH})

_CLASS_NAME = re.compile(r"^(?P<prefix>[A-Z][a-z]+)?(?P<version>V\d+(?:alpha\d+|beta\d+)?)(?P<name>[A-Z]\w*)$")
_CONTAINER = re.compile(r"^(?:List\[(?P<item>.+)\]|Dict\[str, (?P<value>.+)\])$")
_RESPONSE_TYPE = re.compile(r"'2\d\d': \"(\w+)\"")
_RESOURCE_PATH = re.compile(r"resource_path='/(?:api/(v[^/']+)|apis/([^/']+)/([^/']+))/")


# --- cache location and key ----------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("MINIK8S_CACHE_DIR") or Path.home() / ".cache" / "minik8s")


def table_fingerprint(table: ResourceTable) -> str:
    """What of the resource table and the patch metadata shapes the documents."""
    rows = [
        [r.group, r.version, r.kind, r.plural, r.namespaced, list(r.subresources), list(r.short_names),
         list(r.verbs), bool(getattr(r.strategy, "return_deleted_object", False))]
        for r in table.resources
    ]
    patch_meta = {f"{k[0]}/{k[1]}": v for k, v in strategic.BUILTIN_PATCH_META.items()}
    blob = orjson.dumps([rows, patch_meta, SUBRESOURCE_KINDS, SUBRESOURCE_VERBS, PROXY_OPTION_KINDS],
                        option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cache_key(table: ResourceTable) -> str:
    """The packages the documents come from (kubernetes, lightkube-models) + resource table +
    generator (version and source)."""
    client_version = _package_version("kubernetes")
    source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    parts = (f"{client_version}|{_package_version('lightkube-models')}|{table_fingerprint(table)}|"
             f"{GENERATOR_VERSION}|{source}")
    return f"{client_version}-{hashlib.sha256(parts.encode()).hexdigest()[:20]}"


def cache_file(table: ResourceTable, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / f"openapi-{cache_key(table)}.json"


# --- model classes → upstream definitions -------------------------------------------------------


def _go_package(group: str) -> str:
    special = {"": "core", "rbac.authorization.k8s.io": "rbac", "internal.apiserver.k8s.io": "apiserverinternal",
               "flowcontrol.apiserver.k8s.io": "flowcontrol"}
    return special.get(group, group.split(".")[0])


def _package_path(group: str, version: str) -> str:
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}"
    if group == "apiregistration.k8s.io":
        return f"io.k8s.kube-aggregator.pkg.apis.apiregistration.{version}"
    return f"io.k8s.api.{_go_package(group)}.{version}"


#: Class-name prefixes the client adds when two groups have a type of the same name.
_PREFIX_GROUPS = {
    "Core": "", "Events": "events.k8s.io", "Discovery": "discovery.k8s.io", "Storage": "storage.k8s.io",
    "Authentication": "authentication.k8s.io", "Rbac": "rbac.authorization.k8s.io",
    "Flowcontrol": "flowcontrol.apiserver.k8s.io", "Admissionregistration": "admissionregistration.k8s.io",
    "Apiextensions": "apiextensions.k8s.io", "Apiregistration": "apiregistration.k8s.io",
    "Resource": "resource.k8s.io",
}


def _split_class(name: str) -> tuple[str | None, str, str] | None:
    """`CoreV1Event` → ("", "v1", "Event"); `V1Pod` → (None, "v1", "Pod")."""
    m = _CLASS_NAME.match(name)
    if not m:
        return None
    prefix = m.group("prefix")
    if prefix is not None and prefix not in _PREFIX_GROUPS:
        return None
    group = _PREFIX_GROUPS[prefix] if prefix is not None else None
    v = m.group("version")
    return group, v[0].lower() + v[1:], m.group("name")


def _class_for(models: Any, group: str, version: str, kind: str) -> str | None:
    """The model class name of a top-level kind."""
    v = version[0].upper() + version[1:]
    prefix = next((p for p, g in _PREFIX_GROUPS.items() if g == group), None)
    candidates = ([f"{prefix}{v}{kind}"] if prefix else []) + [f"{v}{kind}"]
    return next((c for c in candidates if hasattr(models, c)), None)


def _model_refs(models: Any, cls: Any) -> list[str]:
    out = []
    for t in cls.openapi_types.values():
        base = t
        while (m := _CONTAINER.match(base)) is not None:
            base = m.group("item") or m.group("value")
        if hasattr(models, base):
            out.append(base)
    return out


class Namer:
    """Model class name → upstream definition name."""

    def __init__(self, models: Any, api_modules: list[tuple[str, str, str]]) -> None:
        self.models = models
        self.names: dict[str, str] = {}
        # Explicit: meta types, the version info, the subresource kinds of other groups.
        for cls in dir(models):
            parts = _split_class(cls)
            if parts and parts[1] == "v1" and parts[2] in META_TYPES and parts[0] is None:
                self.names[cls] = META + parts[2]
        if hasattr(models, "VersionInfo"):
            self.names["VersionInfo"] = "io.k8s.apimachinery.pkg.version.Info"
        roots: list[tuple[str, str, str]] = []  # (class, group, version)
        for group, version, kind in SUBRESOURCE_KINDS.values():
            cls = _class_for(models, group, version, kind)
            if cls:
                roots.append((cls, group, version))
        # Kinds each API module serves (core first), each claiming its unnamed same-version types.
        explicit = {c for c, _, _ in roots}
        for group, version, text in sorted(api_modules, key=lambda m: (m[0] != "", m[0], m[1])):
            for cls in sorted(set(_RESPONSE_TYPE.findall(text))):
                if cls not in explicit and hasattr(models, cls):
                    roots.append((cls, group, version))
        for cls, group, version in roots:
            self._claim(cls, group, version)
        # Types embedded across groups, e.g. scheduling/v1alpha3 structs inside batch/v1 JobSpec,
        # were reached only from kinds of another version: place them by name.
        self.kinds_by_gv: dict[tuple[str, str], list[str]] = {}
        for cls, group, version in roots:
            parts = _split_class(cls)
            if parts is not None and parts[1] == version:
                self.kinds_by_gv.setdefault((group, version), []).append(parts[2])

    def _by_name(self, cls: str) -> str | None:
        parts = _split_class(cls)
        if parts is None:
            return None
        _, version, name = parts
        words = _words(name)
        best, best_score = None, 0
        for (group, gv_version), kinds in sorted(self.kinds_by_gv.items()):
            if gv_version != version:
                continue
            for kind in kinds:
                kw = _words(kind)
                score = len(kw) if words[:len(kw)] == kw else 0
                if score > best_score:
                    best, best_score = group, score
        return None if best is None else f"{_package_path(best, version)}.{name}"

    def _claim(self, root: str, group: str, version: str) -> None:
        stack, seen = [root], set()
        while stack:
            cls = stack.pop()
            if cls in seen:
                continue
            seen.add(cls)
            if cls not in self.names:
                parts = _split_class(cls)
                if parts is not None:
                    prefix_group, cls_version, name = parts
                    owner = prefix_group if prefix_group is not None else group
                    if name in CORE_ONLY_FROM_OTHER_GROUPS and cls_version == "v1":
                        owner = ""
                    if prefix_group is not None or cls_version == version:
                        self.names[cls] = f"{_package_path(owner, cls_version)}.{name}"
            stack.extend(_model_refs(self.models, getattr(self.models, cls)))

    def __call__(self, cls: str) -> str:
        name = self.names.get(cls) or self._by_name(cls)
        if name is None:
            raise LookupError(f"no upstream definition name for model {cls}")
        self.names[cls] = name
        return name


def _words(name: str) -> list[str]:
    return re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z0-9]*", name)


def _api_modules() -> list[tuple[str, str, str]]:
    """(group, version, module source) of every API module of the client."""
    import kubernetes.client.api as api_pkg

    out = []
    for path in sorted(Path(api_pkg.__file__).parent.glob("*_api.py")):
        text = path.read_text()
        m = _RESOURCE_PATH.search(text)
        if m is None:
            continue
        if m.group(1):
            out.append(("", m.group(1), text))
        else:
            out.append((m.group(2), m.group(3), text))
    return out


#: The client drops the descriptions of fields whose type is another definition; a kind's and a
#: list's `metadata` say the same everywhere upstream, so theirs are put back.
#: a field in a lightkube model's docstring: `* **name** ``Type`` - description` (wrapped lines follow)
_LIGHTKUBE_FIELD = re.compile(r"^\* \*\*(?P<name>[^*]+)\*\* ``[^`]*`` - (?P<text>.*)$")


def field_docs() -> dict[tuple[str, str, str], str]:
    """(module, class, field) → description from lightkube-models' docstrings (module: `core_v1`,
    `apps_v1`, `meta_v1`…); empty when the package is not installed."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec("lightkube.models")
    except ImportError:
        return {}
    if spec is None or not spec.submodule_search_locations:
        return {}
    out: dict[tuple[str, str, str], str] = {}
    for path in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            key: tuple[str, str, str] | None = None
            for line in (ast.get_docstring(node) or "").splitlines():
                line = line.strip()
                m = _LIGHTKUBE_FIELD.match(line)
                if m is not None:
                    key = (path.stem, node.name, m.group("name"))
                    out[key] = m.group("text")
                elif key is not None and line:
                    out[key] += " " + line  # the generator wrapped the text
                else:
                    key = None
    return out


def _lightkube_key(definition: str, field_name: str) -> tuple[str, str, str]:
    """`io.k8s.api.apps.v1.DeploymentStrategy` → ("apps_v1", "DeploymentStrategy", field)."""
    parts = definition.split(".")
    return f"{parts[-3]}_{parts[-2]}", parts[-1], field_name


def _doc(cls: Any) -> str:
    """The type's description: the model's docstring without the generator's boilerplate."""
    return inspect.cleandoc((cls.__doc__ or "").split("Attributes:")[0])


def _union_members(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _union_members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return set().union(*(_union_members(a) for a in typing.get_args(annotation)))
    return {annotation}


def _is_int_or_string(annotation: Any) -> bool:
    """The client types IntOrString fields `Union[int, str]` (and says `object` in openapi_types)."""
    return _union_members(annotation) - {type(None)} == {int, str}


class Definitions:
    """Swagger 2.0 definitions (refs as ``#/definitions/<name>``) for the served closure."""

    def __init__(self, models: Any, namer: Namer) -> None:
        self.models = models
        self.namer = namer
        self.defs: dict[str, dict[str, Any]] = {}
        self.field_docs = field_docs()

    def add(self, cls: str) -> str:
        name = self.namer(cls)
        if name in self.defs:
            return name
        model = getattr(self.models, cls)
        schema: dict[str, Any] = {"type": "object"}
        self.defs[name] = schema  # before recursing: types may refer to themselves
        description = _doc(model)
        if description:
            schema["description"] = description
        props: dict[str, Any] = {}
        required = []
        # openapi_types and model_fields name some attributes differently (`_exec` / `var_exec`);
        # the JSON name joins them.
        fields = {f.serialization_alias or n: f for n, f in model.model_fields.items()}
        for attr, type_str in model.openapi_types.items():
            field_name = model.attribute_map[attr]
            info = fields[field_name]
            prop = self._property(name, field_name, type_str, info.annotation)
            description = info.description or self.field_docs.get(_lightkube_key(name, field_name))
            if description:
                prop["description"] = description
            props[field_name] = prop
            if info.is_required():
                required.append(field_name)
        schema["properties"] = props
        if required:
            schema["required"] = required
        return name

    def _property(self, owner: str, field_name: str, type_str: str, annotation: Any) -> dict[str, Any]:
        m = _CONTAINER.match(type_str)
        if m is not None:
            if m.group("item") is not None:
                return {"type": "array", "items": self._property(owner, field_name, m.group("item"), None)}
            return {"type": "object", "additionalProperties": self._property(owner, field_name, m.group("value"), None)}
        if type_str == "str":
            if field_name in QUANTITY_FIELDS.get(owner, ()):
                return self.ref(QUANTITY)
            return {"type": "string"}
        if type_str == "int":
            return {"type": "integer"}
        if type_str == "float":
            return {"type": "number", "format": "double"}
        if type_str == "bool":
            return {"type": "boolean"}
        if type_str in ("bytes", "bytearray"):
            return {"type": "string", "format": "byte"}
        if type_str == "date":
            return {"type": "string", "format": "date"}
        if type_str == "datetime":
            return self.ref(MICRO_TIME if field_name in MICRO_TIME_FIELDS.get(owner, ()) else TIME)
        if type_str == "object":
            raw = RAW_FIELDS.get(owner, {}).get(field_name)
            if raw is not None:
                return self.ref(raw)
            if annotation is not None and _is_int_or_string(annotation):
                return self.ref(INT_OR_STRING)
            return {"type": "object"}
        if hasattr(self.models, type_str):
            return self.ref(self.add(type_str))
        raise LookupError(f"{owner}.{field_name}: unsupported client type {type_str!r}")

    def ref(self, name: str) -> dict[str, Any]:
        if name in SYNTHETIC_DEFINITIONS and name not in self.defs:
            self.defs[name] = dict(SYNTHETIC_DEFINITIONS[name])
        return {"$ref": "#/definitions/" + name}


# --- kinds the client has no model for, described by hand --------------------------------------

#: metrics.k8s.io/v1beta1 (k8s.io/metrics types; apiserver/metricsapi.py serves them), as
#: metrics-server's own OpenAPI describes them
METRICS = "io.k8s.metrics.pkg.apis.metrics.v1beta1."


def _metrics_definitions(d: Definitions) -> dict[str, str]:
    """Add the metrics.k8s.io/v1beta1 definitions; their names by kind."""
    status = d.defs[d.add("V1Status")]["properties"]
    type_meta = {k: dict(status[k]) for k in ("apiVersion", "kind")}
    object_meta, list_meta = d.ref(d.add("V1ObjectMeta")), d.ref(d.add("V1ListMeta"))
    usage = {"type": "object", "additionalProperties": d.ref(QUANTITY),
             "description": "The memory usage is the memory working set."}

    def define(kind: str, description: str, props: dict[str, Any], required: list[str]) -> None:
        d.defs[METRICS + kind] = {"type": "object", "description": description, "properties": props,
                                  "required": required}

    def listing(kind: str, what: str) -> None:
        define(f"{kind}List", f"{kind}List is a list of {kind}.",
               {**type_meta, "metadata": list_meta, "items": {
                   "type": "array", "items": d.ref(METRICS + kind), "description": f"List of {what} metrics."}},
               ["items"])

    times = {"timestamp": d.ref(TIME), "window": d.ref(DURATION)}
    define("ContainerMetrics", "ContainerMetrics sets resource usage metrics of a container.",
           {"name": {"type": "string", "description": "Container name corresponding to the one from pod.spec.containers."},
            "usage": usage}, ["name", "usage"])
    define("NodeMetrics", "NodeMetrics sets resource usage metrics of a node.",
           {**type_meta, "metadata": object_meta, **times, "usage": usage}, ["timestamp", "window", "usage"])
    define("PodMetrics", "PodMetrics sets resource usage metrics of a pod.",
           {**type_meta, "metadata": object_meta, **times, "containers": {
               "type": "array", "items": d.ref(METRICS + "ContainerMetrics"), "x-kubernetes-list-type": "atomic",
               "description": "Metrics for all containers are collected within the same time window."}},
           ["timestamp", "window", "containers"])
    listing("NodeMetrics", "node")
    listing("PodMetrics", "pod")
    return {k: METRICS + k for k in ("NodeMetrics", "NodeMetricsList", "PodMetrics", "PodMetricsList")}


#: group version → what adds its hand-written definitions
HAND_DESCRIBED = {("metrics.k8s.io", "v1beta1"): _metrics_definitions}


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[1] if ref else None


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


# --- patch metadata → extensions ----------------------------------------------------------------


def _annotate_patch_meta(defs: dict[str, dict[str, Any]], root: str, fields: dict[str, Any],
                         done: dict[tuple[str, str], tuple], issues: list[str], where: str) -> None:
    props = defs.get(root, {}).get("properties", {})
    for field_name, desc in fields.items():
        prop = props.get(field_name)
        if prop is None:
            issues.append(f"{where}.{field_name}: {root} has no such field")
            continue
        strategy = desc.get("patchStrategy")
        key = desc.get("patchMergeKey")
        if strategy or key:
            meta = (strategy, key)
            previous = done.get((root, field_name))
            if previous is not None and previous != meta:
                issues.append(f"{where}.{field_name}: {root} already has {previous}, table says {meta}")
            else:
                done[(root, field_name)] = meta
                if strategy:
                    prop["x-kubernetes-patch-strategy"] = strategy
                if key:
                    prop["x-kubernetes-patch-merge-key"] = key
                if prop.get("type") == "array" and "merge" in (strategy or "").split(","):
                    list_type = LIST_TYPE_OVERRIDES.get((root, field_name), "map" if key else "set")
                    prop["x-kubernetes-list-type"] = list_type
                    if list_type == "map":
                        prop["x-kubernetes-list-map-keys"] = LIST_MAP_KEYS.get((root, field_name), [key])
        sub_fields = desc.get("fields")
        if sub_fields:
            target = prop.get("items", prop) if prop.get("type") == "array" else prop
            sub = _ref_name(target)
            if sub is None:
                issues.append(f"{where}.{field_name}: {root}.{field_name} is not an object")
                continue
            _annotate_patch_meta(defs, sub, sub_fields, done, issues, f"{where}.{field_name}")


# --- operations ----------------------------------------------------------------------------------

_Q = "query"


def _param(name: str, kind: str, description: str, where: str = _Q, **extra: Any) -> dict[str, Any]:
    p = {"name": name, "in": where, "type": kind, "description": description}
    p.update(extra)
    return p


PARAMS: dict[str, dict[str, Any]] = {p["name"]: p for p in [
    _param("pretty", "string", "If 'true', the output is pretty printed."),
    _param("dryRun", "string", "When present, the request is validated and admitted but not persisted. "
                               "The only valid value is All.", uniqueItems=True),
    _param("fieldManager", "string", "Name of the actor making the change, recorded in managedFields.",
           uniqueItems=True),
    _param("fieldValidation", "string", "How to treat fields the schema does not know: Ignore (drop them), "
                                        "Warn (drop them and answer a Warning header per field, the default) "
                                        "or Strict (reject the request).", uniqueItems=True),
    _param("force", "boolean", "Take ownership of conflicting fields (apply requests only).", uniqueItems=True),
    _param("gracePeriodSeconds", "integer", "Seconds before the object is deleted; 0 means immediately.",
           uniqueItems=True),
    _param("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean",
           "Delete an object that cannot be decoded from storage (unsafe).", uniqueItems=True),
    _param("orphanDependents", "boolean", "Deprecated: use propagationPolicy.", uniqueItems=True),
    _param("propagationPolicy", "string", "Garbage collection of dependents: Orphan, Background or Foreground.",
           uniqueItems=True),
    _param("allowWatchBookmarks", "boolean", "Ask for BOOKMARK events on a watch.", uniqueItems=True),
    _param("continue", "string", "The continue token of the previous page of a list.", uniqueItems=True),
    _param("fieldSelector", "string", "Only objects whose fields match, e.g. metadata.name=x.", uniqueItems=True),
    _param("labelSelector", "string", "Only objects whose labels match the selector.", uniqueItems=True),
    _param("limit", "integer", "The maximum number of objects of one list page.", uniqueItems=True),
    _param("resourceVersion", "string", "The resourceVersion the list or watch starts from.", uniqueItems=True),
    _param("resourceVersionMatch", "string", "How resourceVersion applies to a list: Exact or NotOlderThan.",
           uniqueItems=True),
    _param("sendInitialEvents", "boolean", "Start a watch with the current objects as ADDED events.",
           uniqueItems=True),
    _param("timeoutSeconds", "integer", "End the list or watch after this many seconds.", uniqueItems=True),
    _param("watch", "boolean", "Watch for changes instead of listing.", uniqueItems=True),
    _param("namespace", "string", "object name and auth scope, such as for teams and projects", "path",
           required=True, uniqueItems=True),
    _param("path", "string", "path to the resource", "path", required=True, uniqueItems=True),
    # pods/log
    _param("container", "string", "The container of the pod (optional when it has one).", uniqueItems=True),
    _param("follow", "boolean", "Stream the log as it grows.", uniqueItems=True),
    _param("insecureSkipTLSVerifyBackend", "boolean", "Do not verify the kubelet's serving certificate.",
           uniqueItems=True),
    _param("limitBytes", "integer", "Stop after this many bytes.", uniqueItems=True),
    _param("previous", "boolean", "The log of the previous, terminated container.", uniqueItems=True),
    _param("sinceSeconds", "integer", "Only lines newer than this many seconds.", uniqueItems=True),
    _param("sinceTime", "string", "Only lines after this RFC 3339 time.", uniqueItems=True),
    _param("stream", "string", "All, Stdout or Stderr.", uniqueItems=True),
    _param("tailLines", "integer", "Only this many lines from the end.", uniqueItems=True),
    _param("timestamps", "boolean", "Prefix each line with its RFC 3339 timestamp.", uniqueItems=True),
    # exec / attach / portforward
    _param("command", "string", "The command to run (one parameter per argument).", uniqueItems=True),
    _param("stdin", "boolean", "Attach stdin.", uniqueItems=True),
    _param("stdout", "boolean", "Attach stdout.", uniqueItems=True),
    _param("stderr", "boolean", "Attach stderr.", uniqueItems=True),
    _param("tty", "boolean", "Allocate a terminal.", uniqueItems=True),
    _param("ports", "integer", "The ports to forward.", uniqueItems=True),
]}

WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
               "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
                 "orphanDependents", "propagationPolicy")
DELETE_COLLECTION_PARAMS = tuple(sorted(set(DELETE_PARAMS) | set(LIST_PARAMS) - {"allowWatchBookmarks", "watch"}))
LOG_PARAMS = ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "previous", "sinceSeconds",
              "sinceTime", "stream", "tailLines", "timestamps")
CONNECT_PARAMS = {
    "exec": ("command", "container", "stderr", "stdin", "stdout", "tty"),
    "attach": ("container", "stderr", "stdin", "stdout", "tty"),
    "portforward": ("ports",),
    "proxy": (),
}
CONNECT_OPTION_KINDS = {"exec": "PodExecOptions", "attach": "PodAttachOptions",
                        "portforward": "PodPortForwardOptions"}  # proxy: resources.PROXY_OPTION_KINDS

JSON_YAML = ["application/json", "application/yaml"]
WATCHABLE = [*JSON_YAML, "application/json;stream=watch"]
PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml"]
CONNECT_METHODS = {"get": "get", "create": "post", "update": "put", "patch": "patch", "delete": "delete"}


def _group_camel(group: str, version: str) -> str:
    words = ["core"] if not group else group.removesuffix(".k8s.io").split(".")
    return "".join(w[:1].upper() + w[1:] for w in words) + version[:1].upper() + version[1:]


def _tag(group: str, version: str) -> str:
    words = ["core"] if not group else group.removesuffix(".k8s.io").split(".")
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:]) + "_" + version


class Op:
    """One operation, rendered later as swagger 2.0 or OpenAPI 3.0."""

    def __init__(self, method: str, op_id: str, description: str, action: str, gvk: dict[str, str] | None,
                 tag: str, params: tuple[str, ...] = (), body: str | None = None, body_required: bool = True,
                 consumes: list[str] | None = None, produces: list[str] | None = None,
                 responses: dict[str, str | None] | None = None) -> None:
        self.method = method
        self.op_id = op_id
        self.description = description
        self.action = action
        self.gvk = gvk
        self.tag = tag
        self.params = params
        self.body = body
        self.body_required = body_required
        self.consumes = consumes or ["*/*"]
        self.produces = produces or JSON_YAML
        self.responses = responses or {}


class PathItem:
    def __init__(self, params: tuple[str, ...] = (), name_of: str = "") -> None:
        self.params = params  # path-level parameters
        self.name_of = name_of  # the kind named by {name}
        self.ops: list[Op] = []


def _resource_paths(r: Resource, kind_def: str, list_def: str, sub_defs: dict[str, str]) -> dict[str, PathItem]:
    gv = _group_camel(r.group, r.version)
    tag = _tag(r.group, r.version)
    prefix = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
    ns = "Namespaced" if r.namespaced else ""
    k = r.kind
    gvk = _gvk(r.group, r.version, k)
    verbs = set(r.verbs)
    if r.namespaced:
        coll = f"{prefix}/namespaces/{{namespace}}/{r.plural}"
        watch_coll = f"{prefix}/watch/namespaces/{{namespace}}/{r.plural}"
        coll_params: tuple[str, ...] = ("namespace", "pretty")
    else:
        coll = f"{prefix}/{r.plural}"
        watch_coll = f"{prefix}/watch/{r.plural}"
        coll_params = ("pretty",)
    item = coll + "/{name}"
    item_params = ("name", *coll_params)
    deleted = kind_def if getattr(r.strategy, "return_deleted_object", False) else STATUS
    # custom resources take no strategic merge patch; kubectl apply reads that here
    patch_types = PATCH_TYPES if getattr(r.strategy, "strategic_merge", True) else \
        [t for t in PATCH_TYPES if "strategic" not in t]
    paths: dict[str, PathItem] = {}

    def path(p: str, params: tuple[str, ...], name_of: str = "") -> PathItem:
        return paths.setdefault(p, PathItem(params, name_of or k))

    if {"list", "create", "deletecollection"} & verbs:
        pi = path(coll, coll_params)
        if "list" in verbs:
            pi.ops.append(Op("get", f"list{gv}{ns}{k}", f"list or watch objects of kind {k}", "list", gvk, tag,
                             LIST_PARAMS, produces=WATCHABLE, responses={"200": list_def}))
        if "create" in verbs:
            pi.ops.append(Op("post", f"create{gv}{ns}{k}", f"create a {k}", "post", gvk, tag, WRITE_PARAMS,
                             body=kind_def, responses={"200": kind_def, "201": kind_def, "202": kind_def}))
        if "deletecollection" in verbs:
            pi.ops.append(Op("delete", f"delete{gv}Collection{ns}{k}", f"delete collection of {k}",
                             "deletecollection", gvk, tag, DELETE_COLLECTION_PARAMS, body=DELETE_OPTIONS,
                             body_required=False, responses={"200": STATUS}))
    if {"get", "update", "patch", "delete"} & verbs:
        pi = path(item, item_params)
        if "get" in verbs:
            pi.ops.append(Op("get", f"read{gv}{ns}{k}", f"read the specified {k}", "get", gvk, tag,
                             responses={"200": kind_def}))
        if "update" in verbs:
            pi.ops.append(Op("put", f"replace{gv}{ns}{k}", f"replace the specified {k}", "put", gvk, tag,
                             WRITE_PARAMS, body=kind_def, responses={"200": kind_def, "201": kind_def}))
        if "patch" in verbs:
            pi.ops.append(Op("patch", f"patch{gv}{ns}{k}", f"partially update the specified {k}", "patch", gvk, tag,
                             (*WRITE_PARAMS, "force"), body=PATCH, consumes=patch_types,
                             responses={"200": kind_def, "201": kind_def}))
        if "delete" in verbs:
            pi.ops.append(Op("delete", f"delete{gv}{ns}{k}", f"delete a {k}", "delete", gvk, tag, DELETE_PARAMS,
                             body=DELETE_OPTIONS, body_required=False, responses={"200": deleted, "202": deleted}))
    if "list" in verbs and r.namespaced:
        pi = path(f"{prefix}/{r.plural}", (*LIST_PARAMS, "pretty"))
        pi.ops.append(Op("get", f"list{gv}{k}ForAllNamespaces", f"list or watch objects of kind {k}", "list", gvk,
                         tag, produces=WATCHABLE, responses={"200": list_def}))
    if "watch" in verbs:
        watch_params = (*LIST_PARAMS, "pretty")
        path(watch_coll, (*coll_params[:-1], *watch_params)).ops.append(
            Op("get", f"watch{gv}{ns}{k}List", f"watch individual changes to a list of {k}. deprecated: use the "
               "'watch' parameter with a list operation instead.", "watchlist", gvk, tag, produces=WATCHABLE,
               responses={"200": WATCH_EVENT}))
        path(watch_coll + "/{name}", ("name", *coll_params[:-1], *watch_params)).ops.append(
            Op("get", f"watch{gv}{ns}{k}", f"watch changes to an object of kind {k}. deprecated: use the 'watch' "
               "parameter with a list operation instead, filtered to a single item with the 'fieldSelector' "
               "parameter.", "watch", gvk, tag, produces=WATCHABLE, responses={"200": WATCH_EVENT}))
        if r.namespaced:
            path(f"{prefix}/watch/{r.plural}", watch_params).ops.append(
                Op("get", f"watch{gv}{k}ListForAllNamespaces", f"watch individual changes to a list of {k}. "
                   "deprecated: use the 'watch' parameter with a list operation instead.", "watchlist", gvk, tag,
                   produces=WATCHABLE, responses={"200": WATCH_EVENT}))

    for sub in r.subresources:
        if sub in ("scale", "binding", "eviction", "token") and sub not in sub_defs:
            continue  # its kind has no model (reported by generate)
        cap = sub[:1].upper() + sub[1:]
        sub_verbs = SUBRESOURCE_VERBS.get(sub, ())
        sub_path = f"{item}/{sub}"
        if sub in ("status", "scale"):
            body = kind_def if sub == "status" else sub_defs["scale"]
            sgvk = gvk if sub == "status" else _gvk(*SUBRESOURCE_KINDS["scale"])
            pi = path(sub_path, item_params)
            if "get" in sub_verbs:
                pi.ops.append(Op("get", f"read{gv}{ns}{k}{cap}", f"read {sub} of the specified {k}", "get", sgvk, tag,
                                 responses={"200": body}))
            if "update" in sub_verbs:
                pi.ops.append(Op("put", f"replace{gv}{ns}{k}{cap}", f"replace {sub} of the specified {k}", "put",
                                 sgvk, tag, WRITE_PARAMS, body=body, responses={"200": body, "201": body}))
            if "patch" in sub_verbs:
                pi.ops.append(Op("patch", f"patch{gv}{ns}{k}{cap}", f"partially update {sub} of the specified {k}",
                                 "patch", sgvk, tag, (*WRITE_PARAMS, "force"), body=PATCH, consumes=patch_types,
                                 responses={"200": body, "201": body}))
        elif sub in ("binding", "eviction", "token"):
            sg, sv, sk = SUBRESOURCE_KINDS[sub]
            body = sub_defs[sub]
            path(sub_path, item_params, name_of=sk).ops.append(
                Op("post", f"create{gv}{ns}{k}{cap}", f"create {sub} of a {k}", "post", _gvk(sg, sv, sk), tag,
                   WRITE_PARAMS, body=body, responses={"200": body, "201": body, "202": body}))
        elif sub == "finalize":
            path(sub_path, item_params).ops.append(
                Op("put", f"replace{gv}{ns}{k}{cap}", f"replace finalize of the specified {k}", "put", gvk, tag,
                   WRITE_PARAMS, body=kind_def, responses={"200": kind_def, "201": kind_def}))
        elif sub == "log":
            path(sub_path, item_params).ops.append(
                Op("get", f"read{gv}{ns}{k}{cap}", f"read log of the specified {k}", "get", gvk, tag, LOG_PARAMS,
                   produces=["text/plain", *JSON_YAML], responses={"200": "string"}))
        elif sub in CONNECT_PARAMS:
            option_kind = PROXY_OPTION_KINDS[r.plural] if sub == "proxy" else CONNECT_OPTION_KINDS[sub]
            cgvk = _gvk(r.group, r.version, option_kind)
            variants = [(sub_path, item_params, "")]
            if sub == "proxy":
                variants.append((f"{sub_path}/{{path}}", (*item_params[:-1], "path"), "WithPath"))
            for p, params, suffix in variants:
                pi = path(p, tuple(x for x in params if x != "pretty"), name_of=option_kind)
                for verb in sub_verbs:
                    method = CONNECT_METHODS[verb]
                    m = method[:1].upper() + method[1:]
                    pi.ops.append(Op(method, f"connect{gv}{m}{ns}{k}{cap}{suffix}",
                                     f"connect {method.upper()} requests to {sub} of {k}", "connect", cgvk, tag,
                                     CONNECT_PARAMS[sub], produces=["*/*"], responses={"200": "string"}))
    return paths


def _gv_root_path(group: str, version: str) -> tuple[str, PathItem]:
    prefix = f"/apis/{group}/{version}/" if group else f"/api/{version}/"
    pi = PathItem()
    pi.ops.append(Op("get", f"get{_group_camel(group, version)}APIResources", "get available resources", "",
                     None, _tag(group, version), consumes=JSON_YAML, responses={"200": API_RESOURCE_LIST}))
    return prefix, pi


# --- rendering -----------------------------------------------------------------------------------


def _name_param(kind: str) -> dict[str, Any]:
    return _param("name", "string", f"name of the {kind}", "path", required=True, uniqueItems=True)


def _params_v2(names: tuple[str, ...], kind: str) -> list[dict[str, Any]]:
    return [_name_param(kind) if n == "name" else PARAMS[n] for n in names]


def _render_op_v2(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"description": op.description, "operationId": op.op_id, "schemes": ["https"],
                           "tags": [op.tag], "consumes": op.consumes, "produces": op.produces}
    params = []
    if op.body is not None:
        params.append({"name": "body", "in": "body", "required": op.body_required,
                       "schema": {"$ref": "#/definitions/" + op.body}})
    params.extend(PARAMS[n] for n in op.params)
    if params:
        out["parameters"] = params
    responses: dict[str, Any] = {}
    for code, schema in op.responses.items():
        r: dict[str, Any] = {"description": {"200": "OK", "201": "Created", "202": "Accepted"}[code]}
        if schema == "string":
            r["schema"] = {"type": "string"}
        elif schema:
            r["schema"] = {"$ref": "#/definitions/" + schema}
        responses[code] = r
    responses["401"] = {"description": "Unauthorized"}
    out["responses"] = responses
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk:
        out["x-kubernetes-group-version-kind"] = op.gvk
    return out


def _schema_v3(schema: Any) -> Any:
    """A swagger 2.0 schema → OpenAPI 3.0: refs move to components; a ref with siblings → allOf."""
    if isinstance(schema, list):
        return [_schema_v3(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    # a `properties` map holds field names, not keywords (JSONSchemaProps has a field named "$ref")
    out = {k: {f: _schema_v3(p) for f, p in v.items()} if k == "properties" and isinstance(v, dict) else _schema_v3(v)
           for k, v in schema.items() if k != "$ref"}
    ref = schema.get("$ref")
    if ref is not None:
        ref = ref.replace("#/definitions/", "#/components/schemas/")
        if out:
            out["allOf"] = [{"$ref": ref}]
        else:
            out["$ref"] = ref
    return out


def _param_v3(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p["name"], "in": p["in"], "description": p["description"]}
    if p.get("required"):
        out["required"] = True
    schema: dict[str, Any] = {"type": p["type"]}
    if p.get("uniqueItems"):
        schema["uniqueItems"] = True
    out["schema"] = schema
    return out


def _render_op_v3(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"description": op.description, "operationId": op.op_id, "tags": [op.tag]}
    if op.params:
        out["parameters"] = [_param_v3(PARAMS[n]) for n in op.params]
    if op.body is not None:
        ref = {"$ref": "#/components/schemas/" + op.body}
        out["requestBody"] = {"content": {ct: {"schema": ref} for ct in op.consumes}, "required": op.body_required}
    responses: dict[str, Any] = {}
    for code, schema in op.responses.items():
        r: dict[str, Any] = {"description": {"200": "OK", "201": "Created", "202": "Accepted"}[code]}
        if schema:
            s = {"type": "string"} if schema == "string" else {"$ref": "#/components/schemas/" + schema}
            r["content"] = {ct: {"schema": s} for ct in op.produces}
        responses[code] = r
    responses["401"] = {"description": "Unauthorized"}
    out["responses"] = responses
    if op.action:
        out["x-kubernetes-action"] = op.action
    if op.gvk:
        out["x-kubernetes-group-version-kind"] = op.gvk
    return out


def _closure(defs: dict[str, dict[str, Any]], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        stack.extend(re.findall(r'"#/definitions/([^"]+)"', orjson.dumps(defs[name]).decode()))
    return seen


BEARER = {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                          "description": "Bearer Token authentication"}}
INFO = {"title": "Kubernetes", "version": "unversioned"}


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _etag(data: str) -> str:
    return hashlib.sha512(data.encode()).hexdigest().upper()


# --- OpenAPI v2 as protobuf (gnostic's openapi.v2.Document) -------------------------------------
#
# client-go's OpenAPISchema() asks only for this form and proto-decodes the answer; kubectl needs
# it for client-side validation (`kind: List` files, or when the v3 check fails) and for `explain
# --output plaintext-openapiv2`. The encoding follows gnostic's JSON → proto mapping for the parts
# of swagger 2.0 we emit: field numbers from github.com/google/gnostic-models openapiv2, vendor
# extensions as `Any{yaml: <JSON text>}` (JSON is YAML, which is how readers decode them).


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _pb_str(number: int, value: str) -> bytes:
    return _len_field(number, value.encode()) if value else b""


def _pb_strs(number: int, values: list[str]) -> bytes:
    return b"".join(_len_field(number, v.encode()) for v in values)


def _pb_bool(number: int, value: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if value else b""


def _pb_named_any(name: str, value: Any) -> bytes:
    return _pb_str(1, name) + _len_field(2, _pb_str(2, orjson.dumps(value).decode()))


def _pb_extensions(number: int, obj: dict[str, Any]) -> bytes:
    return b"".join(_len_field(number, _pb_named_any(k, v)) for k, v in obj.items() if k.startswith("x-"))


def _pb_schema(s: dict[str, Any]) -> bytes:
    out = [_pb_str(1, s.get("$ref", "")), _pb_str(2, s.get("format", "")), _pb_str(4, s.get("description", "")),
           _pb_bool(16, s.get("uniqueItems", False)), _pb_strs(19, s.get("required", []))]
    extra = s.get("additionalProperties")
    if extra is not None:
        inner = _len_field(1, _pb_schema(extra)) if isinstance(extra, dict) else _varint(2 << 3) + bytes([extra])
        out.append(_len_field(21, inner))
    if "type" in s:
        types_ = s["type"] if isinstance(s["type"], list) else [s["type"]]
        out.append(_len_field(22, _pb_strs(1, types_)))
    if "items" in s:
        out.append(_len_field(23, _len_field(1, _pb_schema(s["items"]))))
    for sub in s.get("allOf", []):
        out.append(_len_field(24, _pb_schema(sub)))
    if "properties" in s:
        out.append(_len_field(25, b"".join(_len_field(1, _pb_str(1, name) + _len_field(2, _pb_schema(v)))
                                           for name, v in s["properties"].items())))
    out.append(_pb_extensions(31, s))
    return b"".join(out)


def _pb_parameter(p: dict[str, Any]) -> bytes:
    if p["in"] == "body":
        body = (_pb_str(1, p.get("description", "")) + _pb_str(2, p["name"]) + _pb_str(3, "body")
                + _pb_bool(4, p.get("required", False)) + _len_field(5, _pb_schema(p["schema"])))
        return _len_field(1, _len_field(1, body))
    common = _pb_bool(1, p.get("required", False)) + _pb_str(2, p["in"]) + _pb_str(3, p.get("description", "")) \
        + _pb_str(4, p["name"])
    if p["in"] == "path":  # PathParameterSubSchema: type 5, uniqueItems 19
        sub = _len_field(4, common + _pb_str(5, p["type"]) + _pb_bool(19, p.get("uniqueItems", False)))
    else:  # QueryParameterSubSchema: type 6, uniqueItems 20
        sub = _len_field(3, common + _pb_str(6, p["type"]) + _pb_bool(20, p.get("uniqueItems", False)))
    return _len_field(1, _len_field(2, sub))


def _pb_operation(op: dict[str, Any]) -> bytes:
    responses = b"".join(
        _len_field(1, _pb_str(1, code) + _len_field(2, _len_field(1, _pb_str(1, r.get("description", ""))
                                                                  + (_len_field(2, _len_field(1, _pb_schema(r["schema"])))
                                                                     if "schema" in r else b""))))
        for code, r in op.get("responses", {}).items())
    return b"".join([
        _pb_strs(1, op.get("tags", [])), _pb_str(3, op.get("description", "")), _pb_str(5, op.get("operationId", "")),
        _pb_strs(6, op.get("produces", [])), _pb_strs(7, op.get("consumes", [])),
        b"".join(_len_field(8, _pb_parameter(p)) for p in op.get("parameters", [])),
        _len_field(9, responses), _pb_strs(10, op.get("schemes", [])), _pb_extensions(13, op),
    ])


_PATH_ITEM_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def v2_protobuf(doc: dict[str, Any]) -> bytes:
    """A swagger 2.0 document (as we generate it) → gnostic's binary openapi.v2.Document."""
    paths = []
    for name, item in doc["paths"].items():
        body = b"".join(_len_field(_PATH_ITEM_FIELDS[m], _pb_operation(op)) for m, op in item.items()
                        if m in _PATH_ITEM_FIELDS)
        body += b"".join(_len_field(9, _pb_parameter(p)) for p in item.get("parameters", []))
        paths.append(_len_field(2, _pb_str(1, name) + _len_field(2, body)))
    definitions = b"".join(_len_field(1, _pb_str(1, name) + _len_field(2, _pb_schema(s)))
                           for name, s in doc["definitions"].items())
    security = b"".join(_len_field(12, b"".join(_len_field(1, _pb_str(1, k) + _len_field(2, _pb_strs(1, v)))
                                                for k, v in req.items())) for req in doc.get("security", []))
    security_definitions = b"".join(
        _len_field(1, _pb_str(1, name) + _len_field(2, _len_field(2, _pb_str(1, d["type"]) + _pb_str(2, d["name"])
                                                                  + _pb_str(3, d["in"])
                                                                  + _pb_str(4, d.get("description", "")))))
        for name, d in doc.get("securityDefinitions", {}).items())
    info = doc["info"]
    return b"".join([
        _pb_str(1, doc["swagger"]), _len_field(2, _pb_str(1, info["title"]) + _pb_str(2, info["version"])),
        _len_field(8, b"".join(paths)), _len_field(9, definitions), security,
        _len_field(13, security_definitions),
    ])


# --- prune tree ----------------------------------------------------------------------------------


#: Scalar kinds in the prune tree: what JSON value a field accepts (upstream's typed decode).
_SCALAR_OF_TYPE = {"string": "s", "integer": "i", "number": "n", "boolean": "b"}
_LEAF_SCALAR = {QUANTITY: "q", INT_OR_STRING: "q", TIME: "s", MICRO_TIME: "s", DURATION: "s"}


def _prune_node(schema: dict[str, Any], defs: dict[str, dict[str, Any]]) -> Any:
    ref = _ref_name(schema)
    if ref is not None:
        if ref in _LEAF_DEFINITIONS:
            return _LEAF_SCALAR.get(ref, 0)
        if ref in _FREE_FORM_DEFINITIONS:
            return 1
        target = defs[ref]
        return ref if target.get("properties") else 1
    t = schema.get("type")
    if t == "array":
        item = _prune_node(schema.get("items", {}), defs)
        return 1 if item == 1 else {"a": item}
    if t == "object":
        if "additionalProperties" in schema:
            value = _prune_node(schema["additionalProperties"], defs)
            return 1 if value == 1 else {"m": value}
        return 1  # no properties: free-form
    if schema.get("format") == "int-or-string":
        return "q"
    return _SCALAR_OF_TYPE.get(t, 0)


_SCALARS = frozenset({"s", "i", "n", "b", "q"})


def _prune_tree(defs: dict[str, dict[str, Any]], kinds: dict[str, str]) -> dict[str, Any]:
    types: dict[str, Any] = {}
    stack = list(kinds.values())
    while stack:
        name = stack.pop()
        if name in types:
            continue
        props = {f: _prune_node(s, defs) for f, s in defs[name].get("properties", {}).items()}
        types[name] = {"p": props}
        for node in props.values():
            while isinstance(node, dict):
                node = node.get("a", node.get("m"))
            if isinstance(node, str) and node not in _SCALARS:
                stack.append(node)
    return {"types": types, "kinds": kinds}


# --- the whole output ----------------------------------------------------------------------------


def render_paths(gv_paths: dict[str, PathItem], v3: bool) -> dict[str, Any]:
    out = {}
    for p, item in gv_paths.items():
        rendered: dict[str, Any] = {}
        if item.params:
            params = _params_v2(item.params, item.name_of)
            rendered["parameters"] = [_param_v3(x) for x in params] if v3 else params
        for op in item.ops:
            rendered[op.method] = _render_op_v3(op) if v3 else _render_op_v2(op)
        out[p] = rendered
    return out


def v3_document(rendered_paths: dict[str, Any], defs: dict[str, dict[str, Any]]) -> str:
    """One group version's OpenAPI 3.0 document: its paths and the definitions they reach."""
    roots = set(re.findall(r'"#/components/schemas/([^"]+)"', orjson.dumps(rendered_paths).decode()))
    schemas = {n: _schema_v3(defs[n]) for n in sorted(_closure(defs, roots))}
    return _dumps({"openapi": "3.0.0", "info": INFO, "paths": rendered_paths,
                   "components": {"schemas": schemas, "securitySchemes": BEARER}})


def generate(table: ResourceTable) -> dict[str, Any]:
    import kubernetes.client.models as models

    namer = Namer(models, _api_modules())
    d = Definitions(models, namer)

    hand: dict[tuple[str, str], dict[str, str]] = {}  # hand-described group versions, once added

    def kind_def(group: str, version: str, kind: str) -> str:
        cls = _class_for(models, group, version, kind)
        if cls is not None:
            name = d.add(cls)
        else:
            add_definitions = HAND_DESCRIBED.get((group, version))
            if add_definitions is not None and (group, version) not in hand:
                hand[(group, version)] = add_definitions(d)
            found = hand.get((group, version), {}).get(kind)
            if found is None:
                raise LookupError(f"the client has no model for {group}/{version} {kind}")
            name = found
        gvks = d.defs[name].setdefault("x-kubernetes-group-version-kind", [])
        if _gvk(group, version, kind) not in gvks:
            gvks.append(_gvk(group, version, kind))
        return name

    # A kind the client has no model for is left out (and reported), not fatal for the rest.
    issues: list[str] = []
    served: dict[tuple[str, str], list[Resource]] = {}
    kinds: dict[str, str] = {}
    res_defs: dict[Resource, tuple[str, str]] = {}
    for r in table.resources:
        try:
            kind_name = kind_def(r.group, r.version, r.kind)
            list_name = kind_def(r.group, r.version, r.list_kind) if "list" in r.verbs else ""
        except LookupError as e:
            issues.append(f"{r.api_version} {r.kind} left out: {e}")
            continue
        served.setdefault((r.group, r.version), []).append(r)
        res_defs[r] = (kind_name, list_name)
        kinds[f"{r.api_version}/{r.kind}"] = kind_name
    sub_defs = {}
    for sub in ("scale", "binding", "eviction", "token"):
        g, v, k = SUBRESOURCE_KINDS[sub]
        try:
            sub_defs[sub] = kind_def(g, v, k)
        except LookupError as e:
            issues.append(f"subresource {sub} left out: {e}")
            continue
        kinds[f"{g}/{v}/{k}" if g else f"{v}/{k}"] = sub_defs[sub]
    d.add("V1Status")
    d.defs[STATUS]["x-kubernetes-group-version-kind"] = [_gvk("", "v1", "Status")]
    d.add("V1APIResourceList")
    for cls in ("V1DeleteOptions", "V1WatchEvent"):
        name = d.add(cls)
        d.defs[name]["x-kubernetes-group-version-kind"] = [
            _gvk(g, v, name.rsplit(".", 1)[1]) for g, v in sorted(served)]
    kinds["v1/DeleteOptions"] = d.add("V1DeleteOptions")  # DELETE bodies are type-checked like objects
    d.ref(PATCH)

    # Patch metadata (apimachinery.strategic is the source of truth) → extensions.
    done: dict[tuple[str, str], tuple] = {}
    _annotate_patch_meta(d.defs, META + "ObjectMeta", strategic.OBJECT_META_FIELDS, done, issues, "ObjectMeta")
    for (api_version, kind), fields in sorted(strategic.BUILTIN_PATCH_META.items()):
        name = kinds.get(f"{api_version}/{kind}")
        if name is not None:
            _annotate_patch_meta(d.defs, name, fields, done, issues, f"{api_version}/{kind}")

    # Paths.
    paths_by_gv: dict[tuple[str, str], dict[str, PathItem]] = {}
    for (group, version), resources in served.items():
        gv_paths: dict[str, PathItem] = dict([_gv_root_path(group, version)])
        for r in resources:
            gv_paths.update(_resource_paths(r, *res_defs[r], sub_defs))
        paths_by_gv[(group, version)] = gv_paths

    v2_paths: dict[str, Any] = {}
    for gv_paths in paths_by_gv.values():
        v2_paths.update(render_paths(gv_paths, False))
    v2_doc = {"swagger": "2.0", "info": INFO, "paths": v2_paths, "definitions": d.defs,
              "securityDefinitions": BEARER, "security": [{"BearerToken": []}]}
    v2 = _dumps(v2_doc)
    v2_pb = v2_protobuf(orjson.loads(v2))  # the sorted document, so both forms list things alike

    v3: dict[str, dict[str, str]] = {}
    for (group, version), gv_paths in paths_by_gv.items():
        doc = v3_document(render_paths(gv_paths, True), d.defs)
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        v3[key] = {"doc": doc, "hash": _etag(doc)}

    return {
        "key": cache_key(table),
        "v2": v2,
        "v2_etag": _etag(v2),
        "v2_pb": base64.b64encode(v2_pb).decode(),
        "v3": v3,
        "prune": _prune_tree(d.defs, kinds),
        "issues": issues,
        "definitions": len(d.defs),
    }


def write(table: ResourceTable, out: Path) -> dict[str, Any]:
    result = generate(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(result))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    from apiserver.resources import TABLE

    parser = argparse.ArgumentParser(prog="python -m apiserver.openapi_gen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="output file (default: the cache file for this table)")
    args = parser.parse_args(argv)
    out = args.out or cache_file(TABLE)
    started = time.perf_counter()
    result = write(TABLE, out)
    for issue in result["issues"]:
        print(f"openapi_gen: {issue}", file=sys.stderr)
    print(f"openapi_gen: wrote {out} ({out.stat().st_size} bytes, {result['definitions']} definitions, "
          f"{len(result['v3'])} group-versions) in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
