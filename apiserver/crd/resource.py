"""Custom resources: the resource-table rows a CustomResourceDefinition serves, and the
strategy that gives its objects upstream's custom-resource semantics (apiextensions-apiserver's
pkg/registry/customresource): schema pruning, defaulting and validation, generation on any
change outside metadata (and status, with a status subresource), the status and scale
subresources at the paths the definition names, and tables from additionalPrinterColumns.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apimachinery import errors
from apimachinery.jsonpath import JSONPathError, Template, format_value, relaxed
from apimachinery.validation import validate_object_meta_update
from apiserver.crd import schema as crd_schema
from apiserver.crd.conversion import ConversionWebhook
from apiserver.registry.apiextensions import storage_version
from apiserver.registry.base import Cause, Obj, Strategy
from apiserver.resources import ALL_VERBS, Resource
from apiserver.tables import DESCRIPTIONS, age

#: What a definition without additionalPrinterColumns shows besides the name (upstream).
DEFAULT_COLUMNS = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                    "description": DESCRIPTIONS["Age"]}]
NAME_COLUMN = ("Name", "string", "name", 0, DESCRIPTIONS["Name"])


def accepted_names(crd: Obj) -> Obj:
    """The names the resource is served under: the accepted ones (upstream serves those, which
    differ from spec.names while a requested name conflicts)."""
    accepted = (crd.get("status") or {}).get("acceptedNames") or {}
    return accepted if accepted.get("plural") else crd["spec"]["names"]


def rows_for(crd: Obj, terminating: bool = False) -> list[Resource]:
    """A row per served version of an established definition."""
    spec = crd["spec"]
    names = accepted_names(crd)
    group, plural = spec["group"], names["plural"]
    rows = []
    for version in spec.get("versions") or []:
        if not version.get("served"):
            continue
        subs = version.get("subresources") or {}
        rows.append(Resource(
            group, version["name"], names["kind"], plural, spec.get("scope") == "Namespaced",
            CustomResourceStrategy(crd, version, terminating),
            short_names=tuple(names.get("shortNames") or ()),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            categories=tuple(names.get("categories") or ()),
            verbs=ALL_VERBS,
            storage_plural=f"{group}/{plural}",
            singular_name=names.get("singular") or names["kind"].lower(),
        ))
    return rows


def storage_row(crd: Obj, terminating: bool = False) -> Resource:
    """The definition's storage version as a row, served or not: what its cache is keyed by and
    what deleting the definition deletes through."""
    spec = crd["spec"]
    names = accepted_names(crd)
    version = next((v for v in spec.get("versions") or [] if v.get("storage")), {"name": storage_version(crd)})
    return Resource(spec["group"], version["name"], names["kind"], names["plural"], spec.get("scope") == "Namespaced",
                    CustomResourceStrategy(crd, version, terminating), storage_plural=f"{spec['group']}/{names['plural']}")


def _path(json_path: str) -> list[str]:
    """`.spec.replicas` → ["spec", "replicas"] (the scale paths are simple dotted paths)."""
    return [p for p in json_path.split(".") if p]


def _get(obj: Any, path: list[str]) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _cell(kind: str, value: Any, now: dt.datetime) -> Any:
    """A typed column's cell as upstream's cellForJSONValue makes it (None when the type is off)."""
    if kind == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else (
            int(value) if isinstance(value, float) and value.is_integer() else None)
    if kind == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        return age(value, now) if isinstance(value, str) else None
    return value if isinstance(value, str) else None


class CustomResourceStrategy(Strategy):
    tracks_generation = True
    allow_unconditional_update = False  # a PUT must name the resourceVersion it replaces (upstream)
    status_writable_meta = ()  # a /status write changes status only
    strategic_merge = False

    def __init__(self, crd: Obj, version: Obj, terminating: bool = False) -> None:
        spec = crd["spec"]
        self.crd_name = crd["metadata"]["name"]
        self.kind = accepted_names(crd)["kind"]
        self.storage_api_version = f"{spec['group']}/{storage_version(crd)}"
        self.schema: Obj = (version.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        subs = version.get("subresources") or {}
        self.has_status = "status" in subs
        scale = subs.get("scale") or {}
        self.spec_replicas_path = _path(scale.get("specReplicasPath") or ".spec.replicas")
        self.status_replicas_path = _path(scale.get("statusReplicasPath") or ".status.replicas")
        self.selector_path = _path(scale["labelSelectorPath"]) if scale.get("labelSelectorPath") else None
        self.selectable_fields = tuple(f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or [])
        self.terminating = terminating
        self.deprecation_warning = ""
        if version.get("deprecated"):
            self.deprecation_warning = version.get("deprecationWarning") or \
                f"{spec['group']}/{version['name']} {self.kind} is deprecated"
        conversion = spec.get("conversion") or {}
        if conversion.get("strategy") == "Webhook":
            schemas = {f"{spec['group']}/{v['name']}": (v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
                       for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("name")}
            self.conversion_webhook = ConversionWebhook(self.kind, conversion.get("webhook") or {}, schemas)
        stored = set((crd.get("status") or {}).get("storedVersions") or ())
        # objects are all stored at the served version: no apiVersion to rewrite on the way out
        self.single_version = len(spec.get("versions") or []) == 1 and stored <= {version["name"]}
        self._columns = self._printer_columns(version.get("additionalPrinterColumns") or DEFAULT_COLUMNS)
        self._has_rules = crd_schema.has_rules(self.schema)

    @property
    def validates_off_loop(self) -> bool:
        return self._has_rules  # CEL rules: up to apiserver.crd.cel.RUNTIME_STEP_BUDGET steps

    # -- writes -------------------------------------------------------------------------

    def prepare_for_create(self, obj: Obj) -> None:
        if self.terminating:
            raise errors.method_not_allowed("create not allowed while custom resource definition is terminating")
        super().prepare_for_create(obj)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Any change outside metadata (and status, when it is a subresource) is a new generation."""
        skip = ("metadata", "status") if self.has_status else ("metadata",)
        return {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}

    def prune_unknown(self, obj: Obj) -> list[str]:
        """Drop the fields the schema does not specify; → their paths (for fieldValidation)."""
        return crd_schema.prune(self.schema, obj)

    def default(self, obj: Obj) -> None:
        crd_schema.apply_defaults(self.schema, obj)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return super().validate(obj, namespaced) + crd_schema.validate(self.schema, obj, rules=self._has_rules)

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        # `old` binds oldSelf for the schema's transition rules
        return (super().validate(new, namespaced) + crd_schema.validate(self.schema, new, old=old, rules=self._has_rules)
                + validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {}))

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return crd_schema.validate(self.schema, new, old=old, rules=self._has_rules)

    # -- versions -----------------------------------------------------------------------

    def to_storage(self, res: Any, obj: Obj) -> Obj:
        if self.conversion_webhook is not None:
            return obj  # handled in the request's version; the handler converts what it stores
        obj["apiVersion"] = self.storage_api_version  # versions differ in apiVersion only ("None" conversion)
        return obj

    def output_converter(self, res: Any) -> Any:
        if self.single_version or self.conversion_webhook is not None:
            return None
        api_version = res.api_version

        def convert(obj: Obj) -> Obj:
            if obj.get("apiVersion") != api_version:
                obj = {**obj, "apiVersion": api_version}
            return obj

        return convert

    # -- /scale -------------------------------------------------------------------------

    def scale_spec_replicas(self, obj: Obj) -> Any:
        return _get(obj, self.spec_replicas_path) or 0

    def scale_status_replicas(self, obj: Obj) -> Any:
        return _get(obj, self.status_replicas_path) or 0

    def scale_selector(self, obj: Obj, format_selector: Any) -> str:
        """The string at labelSelectorPath (custom resources keep it serialized already)."""
        if self.selector_path is None:
            return ""
        value = _get(obj, self.selector_path)
        return value if isinstance(value, str) else ""

    def set_scale_replicas(self, obj: Obj, replicas: int) -> None:
        cur = obj
        for p in self.spec_replicas_path[:-1]:
            nxt = cur.get(p)
            if not isinstance(nxt, dict):
                nxt = cur[p] = {}
            cur = nxt
        cur[self.spec_replicas_path[-1]] = replicas

    # -- tables -------------------------------------------------------------------------

    def _printer_columns(self, columns: list[Obj]) -> list[tuple[tuple, Template | None]]:
        out: list[tuple[tuple, Template | None]] = []
        for c in columns:
            try:
                template: Template | None = Template(relaxed(c.get("jsonPath") or ""))
            except JSONPathError:
                template = None  # validation refuses these; an old stored definition may have one
            out.append(((c.get("name", ""), c.get("type", "string"), c.get("format", ""), c.get("priority", 0),
                         c.get("description", "")), template))
        return out

    def table_printer(self) -> tuple[list[tuple], Any]:
        columns = [NAME_COLUMN, *(c for c, _ in self._columns)]

        def row(obj: Obj, now: dt.datetime) -> list[Any]:
            cells: list[Any] = [(obj.get("metadata") or {}).get("name", "")]
            for (_, kind, *_rest), template in self._columns:
                try:
                    values = template.values(obj) if template is not None else []
                except JSONPathError:
                    values = []
                if not values or values[0] is None:
                    cells.append(None)
                elif kind == "string":
                    cells.append(format_value(values[0]))
                else:
                    cells.append(_cell(kind, values[0], now))
            return cells

        return columns, row
