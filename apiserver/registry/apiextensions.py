"""Strategy for apiextensions.k8s.io/v1 CustomResourceDefinitions.

What upstream's k8s.io/apiextensions-apiserver decides at v1.31 (the version this server reports):
pkg/registry/customresourcedefinition/strategy.go (status reset, storedVersions bookkeeping),
pkg/apis/apiextensions/v1/defaults.go (defaults) and pkg/apis/apiextensions/validation
(ValidateCustomResourceDefinition, ...Update, ...Status), with upstream's field paths and messages.

Upstream validates the *internal* form of the object, which the v1 → internal conversion builds by
moving per-version `schema`, `subresources`, `additionalPrinterColumns` and `selectableFields` that
are identical in every version to top-level fields (`spec.validation`, `spec.subresources`, ...), and
by flattening `spec.conversion.webhook` into `webhookClientConfig` / `conversionReviewVersions`.
Error paths follow that form, exactly as a real apiserver reports them; `_InternalSpec` reproduces it.

The openAPIV3Schema checks themselves live in `apiserver.crd.definition.validate_schema_definition`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from apimachinery.validation import (
    GoValue,
    child,
    duplicate_cause,
    forbidden_cause,
    go_quote,
    go_string_slice,
    index,
    invalid_cause,
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_port_num,
    key,
    name_is_dns_subdomain,
    not_supported_cause,
    required_cause,
    too_many_cause,
    validate_immutable,
    validate_object_meta,
    validate_object_meta_update,
)
from apiserver.crd.definition import validate_schema_definition
from apiserver.crd.schema import FieldPathError, valid_field_path
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_list, as_str

GROUP = "apiextensions.k8s.io"

#: Condition types (apiextensions/v1 CustomResourceDefinitionConditionType).
ESTABLISHED = "Established"
NAMES_ACCEPTED = "NamesAccepted"
TERMINATING = "Terminating"

API_APPROVED_ANNOTATION = "api-approved.kubernetes.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

SCOPES = ("Cluster", "Namespaced")
CONVERSION_STRATEGIES = ("None", "Webhook")
#: Upstream prints these sets sorted (sets.String.List()).
PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
ACCEPTED_CONVERSION_REVIEW_VERSIONS = ("v1", "v1beta1")
MAX_SELECTABLE_FIELDS = 8
MAX_DEPRECATION_WARNING_LENGTH = 256

_APPROVAL_URL = "https://github.com/kubernetes/enhancements/pull/1111"
_URL_FORM = "; desired format: https://host[/path]"


# ---------------------------------------------------------------------------------------------
# Small helpers other parts of the server use (CRD controllers, the custom resource handler).

def crd_name(group: str, plural: str) -> str:
    """The name a CRD must have: `<plural>.<group>`."""
    return f"{plural}.{group}"


def _spec(crd: Obj) -> Obj:
    spec = crd.get("spec") if isinstance(crd, dict) else None
    return spec if isinstance(spec, dict) else {}


def _versions(spec: Obj) -> list[Obj]:
    versions = spec.get("versions")
    if not isinstance(versions, list):
        return []
    return [v if isinstance(v, dict) else {} for v in versions]


def storage_version(crd: Obj) -> str:
    """The name of the version marked `storage: true` ("" when none is)."""
    for v in _versions(_spec(crd)):
        if v.get("storage") is True:
            return _str(v.get("name"))
    return ""


def find_condition(crd: Obj, cond_type: str) -> Obj | None:
    """The status condition of that type (upstream FindCRDCondition)."""
    status = crd.get("status") if isinstance(crd, dict) else None
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for c in conditions if isinstance(conditions, list) else []:
        if isinstance(c, dict) and c.get("type") == cond_type:
            return c
    return None


def condition_true(crd: Obj, cond_type: str) -> bool:
    """Upstream IsCRDConditionTrue: present and exactly "True"."""
    c = find_condition(crd, cond_type)
    return c is not None and c.get("status") == "True"


def established(crd: Obj) -> bool:
    return condition_true(crd, ESTABLISHED)


def set_condition(crd: Obj, cond_type: str, status: str, reason: str, message: str, now_iso: str) -> None:
    """Upstream SetCRDCondition: add the condition or update it in place; lastTransitionTime moves
    only when the status changes (or was never set). Keys in v1's JSON order; empty reason and
    message are omitted as v1's `omitempty` does."""
    st = crd.get("status")
    if not isinstance(st, dict):
        st = crd["status"] = _zero_status()
    conditions = st.get("conditions")
    if not isinstance(conditions, list):
        conditions = st["conditions"] = []
    existing = find_condition(crd, cond_type)
    if existing is None:
        new: Obj = {"type": cond_type, "status": status, "lastTransitionTime": now_iso}
        if reason:
            new["reason"] = reason
        if message:
            new["message"] = message
        conditions.append(new)
        return
    if existing.get("status") != status or not existing.get("lastTransitionTime"):
        existing["lastTransitionTime"] = now_iso
    existing["status"] = status
    for f, value in (("reason", reason), ("message", message)):
        if value:
            existing[f] = value
        else:
            existing.pop(f, None)


# ---------------------------------------------------------------------------------------------
# Type-tolerant accessors: JSON from clients may hold anything; upstream's decoder would have
# rejected wrong types before validation, so here they simply read as the zero value.

_dict, _list, _str = as_dict, as_list, as_str


def _opt_dict(value: Any) -> Obj | None:
    """A pointer-to-struct field: None when absent/null, {} when present but not an object."""
    if value is None:
        return None
    return value if isinstance(value, dict) else {}


def _str_list(value: Any) -> list[str]:
    return [v if isinstance(v, str) else "" for v in _list(value)]


def _go_byte_slice(data: bytes) -> str:
    return "[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}"


# ---------------------------------------------------------------------------------------------
# The internal form upstream validates.

_PER_VERSION = ("schema", "subresources", "additionalPrinterColumns", "selectableFields")
_SLICE_FIELDS = ("additionalPrinterColumns", "selectableFields")


def _drop_nulls(value: Any) -> Any:
    """JSON null reads as the zero value / a nil pointer in Go: compare without them."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _per_version_value(v: Obj, f: str) -> Any:
    value = v.get(f)
    if f in _SLICE_FIELDS:
        value = _list(value) or None  # nil and empty slices are semantically equal
    elif value is not None and not isinstance(value, dict):
        value = {}
    return _drop_nulls(value)


@dataclass
class _InternalSpec:
    """The parts of upstream's internal CustomResourceDefinitionSpec that differ from v1's."""

    #: per-version values after conversion (None where moved to the top level)
    versions: list[dict[str, Any]]
    validation: Obj | None
    subresources: Obj | None
    columns: list[Any] | None
    selectable: list[Any] | None


def _internal_spec(spec: Obj) -> _InternalSpec:
    versions = _versions(spec)
    per: list[dict[str, Any]] = [{f: _per_version_value(v, f) for f in _PER_VERSION} for v in versions]
    top: dict[str, Any] = dict.fromkeys(_PER_VERSION)
    if versions:
        for f in _PER_VERSION:
            first = per[0][f]
            if all(p[f] == first for p in per):
                top[f] = first
                for p in per:
                    p[f] = None
    return _InternalSpec(per, top["schema"], top["subresources"], top["additionalPrinterColumns"],
                         top["selectableFields"])


def _has_status(subresources: Obj | None) -> bool:
    return subresources is not None and subresources.get("status") is not None


def _has_scale(subresources: Obj | None) -> bool:
    return subresources is not None and subresources.get("scale") is not None


def _go_versions_repr(spec: Obj, internal: _InternalSpec) -> str:
    """spec.versions as upstream's field.Invalid prints it: Go's %#v of the internal slice.
    Pointers print as addresses there; these are stand-ins."""
    addr = [0xC000100000]

    def ptr(type_name: str, present: bool) -> str:
        if not present:
            return f"(*{type_name})(nil)"
        addr[0] += 0x40
        return f"(*{type_name})(0x{addr[0]:x})"

    items = []
    for v, p in zip(_versions(spec), internal.versions, strict=True):
        cols = p["additionalPrinterColumns"]
        if cols is None:
            cols_s = "[]apiextensions.CustomResourceColumnDefinition(nil)"
        else:
            cols_s = "[]apiextensions.CustomResourceColumnDefinition{" + ", ".join(
                "apiextensions.CustomResourceColumnDefinition{"
                f"Name:{go_quote(_str(_dict(c).get('name')))}, Type:{go_quote(_str(_dict(c).get('type')))}, "
                f"Format:{go_quote(_str(_dict(c).get('format')))}, "
                f"Description:{go_quote(_str(_dict(c).get('description')))}, "
                f"Priority:{_dict(c).get('priority') or 0}, JSONPath:{go_quote(_str(_dict(c).get('jsonPath')))}}}"
                for c in cols) + "}"
        sel = p["selectableFields"]
        if sel is None:
            sel_s = "[]apiextensions.SelectableField(nil)"
        else:
            sel_s = "[]apiextensions.SelectableField{" + ", ".join(
                f"apiextensions.SelectableField{{JSONPath:{go_quote(_str(_dict(s).get('jsonPath')))}}}"
                for s in sel) + "}"
        items.append(
            "apiextensions.CustomResourceDefinitionVersion{"
            f"Name:{go_quote(_str(v.get('name')))}, Served:{_go_bool(v.get('served'))}, "
            f"Storage:{_go_bool(v.get('storage'))}, Deprecated:{_go_bool(v.get('deprecated'))}, "
            f"DeprecationWarning:{ptr('string', isinstance(v.get('deprecationWarning'), str))}, "
            f"Schema:{ptr('apiextensions.CustomResourceValidation', p['schema'] is not None)}, "
            f"Subresources:{ptr('apiextensions.CustomResourceSubresources', p['subresources'] is not None)}, "
            f"AdditionalPrinterColumns:{cols_s}, SelectableFields:{sel_s}}}")
    if not isinstance(spec.get("versions"), list):
        return "[]apiextensions.CustomResourceDefinitionVersion(nil)"
    return "[]apiextensions.CustomResourceDefinitionVersion{" + ", ".join(items) + "}"


def _go_bool(value: Any) -> str:
    return "true" if value is True else "false"


# ---------------------------------------------------------------------------------------------
# Schema checks delegated to apiserver.crd.definition.

def _schema_definition_validator() -> Any:
    """The openAPIV3Schema checks (a seam the tests replace to see how they are called)."""
    return validate_schema_definition


def _schema_has(schema: Any, pred: Any) -> bool:
    """Upstream SchemaHas over a JSON schema: `pred` holds for it or any nested schema."""
    if not isinstance(schema, dict):
        return False
    if pred(schema):
        return True
    items = schema.get("items")
    nested: list[Any] = []
    if isinstance(items, dict):
        nested.append(items)
    elif isinstance(items, list):
        nested.extend(items)
    for f in ("allOf", "anyOf", "oneOf"):
        nested.extend(_list(schema.get(f)))
    nested.append(schema.get("not"))
    for f in ("properties", "patternProperties", "definitions", "dependencies"):
        nested.extend(_dict(schema.get(f)).values())
    for f in ("additionalProperties", "additionalItems"):
        if isinstance(schema.get(f), dict):
            nested.append(schema[f])
    return any(_schema_has(s, pred) for s in nested)


def _spec_has_defaults(internal: _InternalSpec) -> bool:
    schemas = [internal.validation] + [p["schema"] for p in internal.versions]
    return any(_schema_has(_dict(s).get("openAPIV3Schema"), lambda s: s.get("default") is not None)
               for s in schemas if s is not None)


# ---------------------------------------------------------------------------------------------
# Validation pieces (upstream validation.go), in its order.

@dataclass
class _Options:
    require_recognized_conversion_review_version: bool = True
    require_immutable_names: bool = False
    require_openapi_schema: bool = True
    allow_invalid_ca_bundle: bool = True


def _join(errs: list[str]) -> str:
    return ",".join(errs)


def _validate_names(names: Obj, path: str) -> list[Cause]:
    """ValidateCustomResourceDefinitionNames (spec.names and status.acceptedNames)."""
    causes: list[Cause] = []
    for f in ("plural", "singular"):
        value = _str(names.get(f))
        if value and (errs := is_dns1035_label(value)):
            causes.append(invalid_cause(child(path, f), value, _join(errs)))
    for f in ("kind", "listKind"):
        value = _str(names.get(f))
        if value and (errs := is_dns1035_label(value.lower())):
            causes.append(invalid_cause(child(path, f), value,
                                        "may have mixed case, but should otherwise match: " + _join(errs)))
    for i, short in enumerate(_str_list(names.get("shortNames"))):
        if errs := is_dns1035_label(short):
            causes.append(invalid_cause(index(child(path, "shortNames"), i), short, _join(errs)))
    kind, list_kind = _str(names.get("kind")), _str(names.get("listKind"))
    if kind and kind == list_kind:
        causes.append(invalid_cause(child(path, "listKind"), list_kind, "kind and listKind may not be the same"))
    for i, category in enumerate(_str_list(names.get("categories"))):
        if errs := is_dns1035_label(category):
            causes.append(invalid_cause(index(child(path, "categories"), i), category, _join(errs)))
    return causes


def _simple_json_path(s: str, path: str) -> list[Cause]:
    """validateSimpleJSONPath."""
    if not s:
        return [invalid_cause(path, s, "must not be empty")]
    if s[0] != ".":
        return [invalid_cause(path, s, "must be a simple json path starting with .")]
    return []


def _validate_subresources(sub: Obj | None, path: str) -> list[Cause]:
    """ValidateCustomResourceDefinitionSubresources."""
    if sub is None:
        return []
    scale = _opt_dict(sub.get("scale"))
    if scale is None:
        return []
    causes: list[Cause] = []
    for f, prefix, where in (("specReplicasPath", ".spec.", ".spec"), ("statusReplicasPath", ".status.", ".status")):
        p = child(path, f"scale.{f}")
        value = _str(scale.get(f))
        if not value:
            causes.append(required_cause(p))
        elif errs := _simple_json_path(value, p):
            causes += errs
        elif not value.startswith(prefix):
            causes.append(invalid_cause(p, value, f"should be a json path under {where}"))
    selector = _str(scale.get("labelSelectorPath"))
    if selector:
        p = child(path, "scale.labelSelectorPath")
        if errs := _simple_json_path(selector, p):
            causes += errs
        elif not selector.startswith((".spec.", ".status.")):
            causes.append(invalid_cause(p, selector, "should be a json path under either .spec or .status"))
    return causes


def _validate_column(col: Obj, path: str) -> list[Cause]:
    """ValidateCustomResourceColumnDefinition."""
    causes: list[Cause] = []
    if not _str(col.get("name")):
        causes.append(required_cause(child(path, "name")))
    types = "must be one of " + ",".join(PRINTER_COLUMN_TYPES)
    col_type = _str(col.get("type"))
    if not col_type:
        causes.append(required_cause(child(path, "type"), types))
    elif col_type not in PRINTER_COLUMN_TYPES:
        causes.append(invalid_cause(child(path, "type"), col_type, types))
    fmt = _str(col.get("format"))
    if fmt and fmt not in PRINTER_COLUMN_FORMATS:
        causes.append(invalid_cause(child(path, "format"), fmt, "must be one of " + ",".join(PRINTER_COLUMN_FORMATS)))
    json_path = _str(col.get("jsonPath"))
    # upstream names the field by its Go name here
    if not json_path:
        causes.append(required_cause(child(path, "JSONPath")))
    else:
        causes += _simple_json_path(json_path, child(path, "JSONPath"))
    return causes


def _validate_selectable_fields(fields: list[Any], schema: Any, path: str) -> list[Cause]:
    """ValidateCustomResourceSelectableFields (the schema walk is upstream's ValidFieldPath)."""
    causes: list[Cause] = []
    seen: set[tuple[str, ...]] = set()
    for i, sf in enumerate(fields):
        p = child(index(path, i), "jsonPath")
        json_path = _str(_dict(sf).get("jsonPath"))
        if not json_path:
            causes.append(required_cause(p))
            continue
        try:
            path_segments, found = valid_field_path(json_path, schema, allow_array=False)
            segments = [name for name, _ in path_segments]
        except FieldPathError as e:
            causes.append(invalid_cause(p, json_path, f"is an invalid path: {e}"))
            continue
        if segments and segments[0] == "metadata":
            causes.append(invalid_cause(p, json_path, "must not point to fields in metadata"))
        if found is None or found.get("type") not in ("string", "boolean", "integer"):
            causes.append(invalid_cause(p, json_path, "must point to a field of type string, boolean or integer. "
                                                      "Enum string fields and strings with formats are allowed."))
        if tuple(segments) in seen:
            causes.append(duplicate_cause(p, json_path))
        else:
            seen.add(tuple(segments))
    if len(seen) > MAX_SELECTABLE_FIELDS:
        causes.append(too_many_cause(path, len(seen), MAX_SELECTABLE_FIELDS))
    return causes


def _validate_schema(validation: Obj | None, path: str, has_status: bool, has_scale: bool) -> list[Cause]:
    """validateCustomResourceDefinitionValidation: the openAPIV3Schema checks (delegated)."""
    if validation is None:
        return []
    schema = validation.get("openAPIV3Schema")
    if schema is None:
        return []
    validator = _schema_definition_validator()
    return list(validator(schema if isinstance(schema, dict) else {}, child(path, "openAPIV3Schema"),
                          has_status=has_status, has_scale=has_scale))


def _deprecation_warning_errors(deprecated: bool, warning: Any) -> list[str]:
    if not deprecated and warning is not None:
        return ["can only be set for deprecated versions"]
    if not isinstance(warning, str):
        return []
    errs: list[str] = []
    if len(warning.encode()) > MAX_DEPRECATION_WARNING_LENGTH:
        errs.append(f"must be <= {MAX_DEPRECATION_WARNING_LENGTH} characters long")
    if not warning:
        errs.append("must not be an empty string")
    for i, ch in enumerate(warning):
        if not ch.isprintable():
            at = len(warning[:i].encode("utf-8", "surrogatepass"))
            errs.append(f"must only contain printable UTF-8 characters; non-printable character found at index {at}")
            break
    return errs


def _validate_version(v: Obj, per: dict[str, Any], path: str, status_enabled: bool, scale_enabled: bool) -> list[Cause]:
    """validateCustomResourceDefinitionVersion."""
    warning = v.get("deprecationWarning")
    causes = [invalid_cause(child(path, "deprecationWarning"), warning, msg)
              for msg in _deprecation_warning_errors(v.get("deprecated") is True, warning)]
    causes += _validate_schema(per["schema"], child(path, "schema"), status_enabled, scale_enabled)
    causes += _validate_subresources(per["subresources"], child(path, "subresources"))
    for j, col in enumerate(per["additionalPrinterColumns"] or []):
        causes += _validate_column(_dict(col), index(child(path, "additionalPrinterColumns"), j))
    if per["selectableFields"]:
        schema = _dict(per["schema"]).get("openAPIV3Schema")
        if schema is None:
            causes.append(invalid_cause(child(path, "selectableFields"), "",
                                        "selectableFields may only be set when version.schema.openAPIV3Schema "
                                        "is not included"))
        else:
            causes += _validate_selectable_fields(per["selectableFields"], schema, child(path, "selectableFields"))
    return causes


def _validate_conversion_review_versions(versions: list[str], require_recognized: bool, path: str) -> list[Cause]:
    if not versions:
        return [required_cause(path)]
    causes: list[Cause] = []
    seen: set[str] = set()
    recognized = False
    for i, v in enumerate(versions):
        if v in seen:
            causes.append(invalid_cause(index(path, i), v, "duplicate version"))
            continue
        seen.add(v)
        causes += [invalid_cause(index(path, i), v, msg) for msg in is_dns1035_label(v)]
        recognized = recognized or v in ACCEPTED_CONVERSION_REVIEW_VERSIONS
    if require_recognized and not recognized:
        causes.append(invalid_cause(path, GoValue(go_string_slice(versions)), "must include at least one of "
                                    + ", ".join(ACCEPTED_CONVERSION_REVIEW_VERSIONS)))
    return causes


_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def _go_url_parse(raw: str) -> tuple[str | None, dict[str, str]]:
    """The parts of Go's url.Parse ValidateWebhookURL looks at: (error, {scheme, host, user,
    fragment, query}). Covers the errors a webhook URL realistically hits."""
    def fail(msg: str) -> tuple[str, dict[str, str]]:
        return f"parse {go_quote(raw)}: {msg}", {}

    rest, _, fragment = raw.partition("#")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in rest):
        return fail("net/url: invalid control character in URL")
    scheme = ""
    m = _SCHEME_RE.match(rest)
    if rest.startswith(":"):
        return fail("missing protocol scheme")
    if m and rest[m.end():m.end() + 1] == ":":
        scheme, rest = m.group(0).lower(), rest[m.end() + 1:]
    rest, _, query = rest.partition("?")
    parts = {"scheme": scheme, "host": "", "user": "", "fragment": unquote(fragment), "query": query}
    if not rest.startswith("/"):
        if not scheme and ":" in rest.split("/", 1)[0]:
            return fail("first path segment in URL cannot contain colon")
        return None, parts
    if rest.startswith("//"):
        authority = rest[2:].split("/", 1)[0]
        user, at, host = authority.rpartition("@")
        if at:
            parts["user"] = user
        port = host.rpartition("]")[2] if host.startswith("[") else host
        _, colon, digits = port.rpartition(":")
        if colon and not (digits == "" or (digits.isascii() and digits.isdigit())):
            return fail(f"invalid port {go_quote(':' + digits)} after host")
        parts["host"] = host
    return None, parts


def _validate_webhook_url(url: str, path: str) -> list[Cause]:
    """ValidateWebhookURL(forceHttps=true)."""
    err, u = _go_url_parse(url)
    if err is not None:
        return [required_cause(path, f"url must be a valid URL: {err}{_URL_FORM}")]
    causes: list[Cause] = []
    if u["scheme"] != "https":
        causes.append(invalid_cause(path, u["scheme"], "'https' is the only allowed URL scheme" + _URL_FORM))
    if not u["host"]:
        causes.append(invalid_cause(path, u["host"], "host must be provided" + _URL_FORM))
    if u["user"]:
        causes.append(invalid_cause(path, u["user"], "user information is not permitted in the URL"))
    if u["fragment"]:
        causes.append(invalid_cause(path, u["fragment"], "fragments are not permitted in the URL"))
    if u["query"]:
        causes.append(invalid_cause(path, u["query"], "query parameters are not permitted in the URL"))
    return causes


def _validate_webhook_service(svc: Obj, path: str) -> list[Cause]:
    """ValidateWebhookService."""
    causes: list[Cause] = []
    if not _str(svc.get("name")):
        causes.append(required_cause(child(path, "name"), "service name is required"))
    if not _str(svc.get("namespace")):
        causes.append(required_cause(child(path, "namespace"), "service namespace is required"))
    port = svc.get("port")
    port = port if isinstance(port, int) and not isinstance(port, bool) else 0
    if errs := is_valid_port_num(port):
        causes.append(invalid_cause(child(path, "port"), port, "port is not valid: " + ", ".join(errs)))
    url_path = svc.get("path")
    if not isinstance(url_path, str) or url_path in ("", "/"):
        return causes
    pp = child(path, "path")
    if url_path == "//":
        return [*causes, invalid_cause(pp, url_path, "segment[0] may not be empty")]
    if not url_path.startswith("/"):
        causes.append(invalid_cause(pp, url_path, "must start with a '/'"))
    to_check = url_path[1:]
    if to_check.endswith("/"):
        to_check = to_check[:-1]
    for i, step in enumerate(to_check.split("/")):
        if not step:
            causes.append(invalid_cause(pp, url_path, f"segment[{i}] may not be empty"))
            continue
        causes += [invalid_cause(pp, url_path, f"segment[{i}]: {msg}") for msg in is_dns1123_subdomain(step)]
    return causes


_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\n-]*)-----\r?\n(.*?)-----END \1-----", re.S)


def _ca_bundle_error(data: bytes) -> str | None:
    """Why client-go could not load `data` as root certificates (None when it can)."""
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        return "unable to load root certificates: unable to parse bytes as PEM block"
    parse_error = ""
    for b in blocks:
        body = b.group(2)
        if b.group(1) != b"CERTIFICATE" or b":" in body.split(b"\n", 1)[0]:
            continue  # AppendCertsFromPEM skips other block types and blocks with headers
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            continue
        try:
            from cryptography import x509

            x509.load_der_x509_certificate(der)
            return None
        except Exception:  # any parse failure is what Go reports as malformed
            parse_error = parse_error or "unable to load root certificates: failed to parse certificate: " \
                                         "x509: malformed certificate"
    return parse_error or "unable to load root certificates: no valid certificate authority data seen"


def _ca_bundle_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()


def _validate_conversion(conv: Obj | None, opts: _Options, path: str) -> list[Cause]:
    """validateCustomResourceConversion on the internal form: webhook.clientConfig reads as
    `webhookClientConfig`, webhook.conversionReviewVersions as `conversionReviewVersions`."""
    if conv is None:
        return []
    strategy = conv.get("strategy")
    strategy = strategy if isinstance(strategy, str) else ""
    causes: list[Cause] = []
    if not strategy:
        causes.append(required_cause(child(path, "strategy")))
    elif strategy not in CONVERSION_STRATEGIES:
        causes.append(not_supported_cause(child(path, "strategy"), strategy, CONVERSION_STRATEGIES))
    webhook = _opt_dict(conv.get("webhook"))
    client_config = _opt_dict(webhook.get("clientConfig")) if webhook is not None else None
    review_versions = _str_list(webhook.get("conversionReviewVersions")) if webhook is not None else []
    cc_path = child(path, "webhookClientConfig")
    if strategy == "Webhook":
        if client_config is None:
            causes.append(required_cause(cc_path, "required when strategy is set to Webhook"))
        else:
            url, service = client_config.get("url"), _opt_dict(client_config.get("service"))
            if (url is None) == (service is None):
                causes.append(required_cause(cc_path, "exactly one of url or service is required"))
            elif url is not None:
                causes += _validate_webhook_url(_str(url), child(cc_path, "url"))
            elif service is not None:
                causes += _validate_webhook_service(service, child(cc_path, "service"))
            bundle = _ca_bundle_bytes(client_config.get("caBundle"))
            if bundle and not opts.allow_invalid_ca_bundle and (err := _ca_bundle_error(bundle)):
                causes.append(invalid_cause(child(cc_path, "caBundle"), GoValue(_go_byte_slice(bundle)), err))
        causes += _validate_conversion_review_versions(review_versions, opts.require_recognized_conversion_review_version,
                                                       child(path, "conversionReviewVersions"))
    else:
        if client_config is not None:
            causes.append(forbidden_cause(cc_path, "should not be set when strategy is not set to Webhook"))
        if review_versions:
            causes.append(forbidden_cause(child(path, "conversionReviewVersions"),
                                          "should not be set when strategy is not set to Webhook"))
    return causes


def _validate_spec(spec: Obj, opts: _Options, path: str = "spec") -> list[Cause]:
    """validateCustomResourceDefinitionSpec."""
    causes: list[Cause] = []
    internal = _internal_spec(spec)
    versions = _versions(spec)
    vpath = child(path, "versions")

    group = _str(spec.get("group"))
    if not group:
        causes.append(required_cause(child(path, "group")))
    elif errs := is_dns1123_subdomain(group):
        causes.append(invalid_cause(child(path, "group"), group, _join(errs)))
    elif len(group.split(".")) < 2:
        causes.append(invalid_cause(child(path, "group"), group, "should be a domain with at least one dot"))

    scope = _str(spec.get("scope"))
    if not scope:
        causes.append(required_cause(child(path, "scope")))
    elif scope not in SCOPES:
        causes.append(not_supported_cause(child(path, "scope"), scope, SCOPES))

    preserve_unknown = spec.get("preserveUnknownFields") is True
    top_schema = _dict(internal.validation).get("openAPIV3Schema") if internal.validation is not None else None
    if top_schema is None:
        for i, (v, per) in enumerate(zip(versions, internal.versions, strict=True)):
            p = child(child(index(vpath, i), "schema"), "openAPIV3Schema")
            missing = per["schema"] is None or per["schema"].get("openAPIV3Schema") is None
            if opts.require_openapi_schema and missing:
                causes.append(required_cause(p, "schemas are required"))
            elif not opts.require_openapi_schema and not preserve_unknown and v.get("served") is True and missing:
                causes.append(required_cause(p, "because otherwise all fields are pruned"))
    if preserve_unknown and _spec_has_defaults(internal):
        causes.append(invalid_cause(child(path, "preserveUnknownFields"), True,
                                    "must be false in order to use defaults in the schema"))

    per_version_subresources = any(p["subresources"] is not None for p in internal.versions)
    storage_count = 0
    names_seen: set[str] = set()
    unique = True
    for i, (v, per) in enumerate(zip(versions, internal.versions, strict=True)):
        if v.get("storage") is True:
            storage_count += 1
        name = _str(v.get("name"))
        if name in names_seen:
            unique = False
        names_seen.add(name)
        if errs := is_dns1035_label(name):
            causes.append(invalid_cause(child(index(vpath, i), "name"), name, _join(errs)))
        # getSubresourcesForVersion: the top-level ones unless subresources differ per version
        subresources = per["subresources"] if per_version_subresources else internal.subresources
        causes += _validate_version(v, per, index(vpath, i), _has_status(subresources), _has_scale(subresources))

    if not unique:
        causes.append(invalid_cause(vpath, GoValue(_go_versions_repr(spec, internal)), "must contain unique version names"))
    if storage_count != 1:
        causes.append(invalid_cause(vpath, GoValue(_go_versions_repr(spec, internal)),
                                    "must have exactly one version marked as storage version"))
    if versions:
        # the internal spec.version is versions[0].name; upstream checks it again
        first = _str(versions[0].get("name"))
        if first and (errs := is_dns1035_label(first)):
            causes.append(invalid_cause(child(path, "version"), first, _join(errs)))

    names = _dict(spec.get("names"))
    npath = child(path, "names")
    for f in ("plural", "singular", "kind", "listKind"):
        if not _str(names.get(f)):
            causes.append(required_cause(child(npath, f)))
    causes += _validate_names(names, npath)

    any_status = _has_status(internal.subresources) or any(_has_status(p["subresources"]) for p in internal.versions)
    any_scale = _has_scale(internal.subresources) or any(_has_scale(p["subresources"]) for p in internal.versions)
    causes += _validate_schema(internal.validation, child(path, "validation"), any_status, any_scale)
    causes += _validate_subresources(internal.subresources, child(path, "subresources"))
    for j, col in enumerate(internal.columns or []):
        causes += _validate_column(_dict(col), index(child(path, "additionalPrinterColumns"), j))
    if internal.selectable:
        if internal.validation is None:
            causes.append(invalid_cause(child(path, "selectableFields"), "",
                                        "selectableFields may only be set when validations.schema is included"))
        else:
            causes += _validate_selectable_fields(internal.selectable, internal.validation.get("openAPIV3Schema"),
                                                  child(path, "selectableFields"))

    conversion = _opt_dict(spec.get("conversion"))
    strategy = _str(conversion.get("strategy")) if conversion is not None else ""
    if conversion is not None and strategy != "None" and preserve_unknown:
        causes.append(invalid_cause(child(child(path, "conversion"), "strategy"), strategy,
                                    "must be None if spec.preserveUnknownFields is true"))
    causes += _validate_conversion(conversion, opts, child(path, "conversion"))
    return causes


def _validate_status(status: Obj) -> list[Cause]:
    """ValidateCustomResourceDefinitionStatus."""
    return _validate_names(_dict(status.get("acceptedNames")), "status.acceptedNames")


def _validate_stored_versions(stored: Any, versions: list[Obj], path: str = "status.storedVersions") -> list[Cause]:
    """ValidateCustomResourceDefinitionStoredVersions."""
    stored_list = _str_list(stored) if isinstance(stored, list) else None
    if not stored_list:
        return [invalid_cause(path, GoValue(go_string_slice(stored_list)), "must have at least one stored version")]
    remaining = {v: i for i, v in enumerate(stored_list)}
    causes: list[Cause] = []
    for v in versions:
        name = _str(v.get("name"))
        present = name in remaining
        if v.get("storage") is True and not present:
            causes.append(invalid_cause(path, GoValue(go_string_slice(stored_list)), "must have the storage version " + name))
        remaining.pop(name, None)
    for v, i in sorted(remaining.items(), key=lambda kv: kv[1]):
        causes.append(invalid_cause(index(path, i), v, "must appear in spec.versions"))
    return causes


def _is_protected_group(group: str) -> bool:
    return group in ("k8s.io", "kubernetes.io") or group.endswith((".k8s.io", ".kubernetes.io"))


def _approval_state(annotations: Obj) -> tuple[str, str]:
    """Upstream GetAPIApprovalState: (state, reason)."""
    value = annotations.get(API_APPROVED_ANNOTATION)
    value = value if isinstance(value, str) else ""
    if not value:
        return "missing", (f"protected groups must have approval annotation {go_quote(API_APPROVED_ANNOTATION)}, "
                           f"see {_APPROVAL_URL}")
    if value.startswith("unapproved"):
        return "bypassed", f"not approved: {go_quote(value)}"
    err, parts = _go_url_parse(value)
    if err is None and parts.get("scheme") and parts.get("host"):
        return "approved", f"approved in {value}"
    return "invalid", (f"protected groups must have approval annotation {go_quote(API_APPROVED_ANNOTATION)} with "
                       f"either a URL or a reason starting with \"unapproved\", see {_APPROVAL_URL}")


def _validate_api_approval(new: Obj, old: Obj | None) -> list[Cause]:
    """validateAPIApproval: CRDs in *.k8s.io / *.kubernetes.io need the approval annotation."""
    if not _is_protected_group(_str(_spec(new).get("group"))):
        return []
    state, reason = _approval_state(_dict(_dict(new.get("metadata")).get("annotations")))
    if old is not None and _approval_state(_dict(_dict(old.get("metadata")).get("annotations")))[0] == state:
        return []
    path = key("metadata.annotations", API_APPROVED_ANNOTATION)
    if state == "missing":
        return [required_cause(path, reason)]
    if state == "invalid":
        value = _dict(_dict(new.get("metadata")).get("annotations")).get(API_APPROVED_ANNOTATION)
        return [invalid_cause(path, value, reason)]
    return []


def _validate_preserve_unknown_fields(new: Obj, old: Obj | None) -> list[Cause]:
    if old is not None and _spec(old).get("preserveUnknownFields") is True:
        return []  # existing data keeps working
    if _spec(new).get("preserveUnknownFields") is True:
        return [invalid_cause("spec.preserveUnknownFields", True,
                              "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                              "spec.versions[*].schema instead")]
    return []


def _all_versions_specify_schema(spec: Obj) -> bool:
    """allVersionsSpecifyOpenAPISchema (a top-level schema covers every version)."""
    return all(_dict(v.get("schema")).get("openAPIV3Schema") is not None for v in _versions(spec))


def _valid_or_empty_review_versions(spec: Obj) -> bool:
    conv = _opt_dict(spec.get("conversion"))
    if conv is None:
        return True
    versions = _str_list(_dict(conv.get("webhook")).get("conversionReviewVersions"))
    return not versions or any(v in ACCEPTED_CONVERSION_REVIEW_VERSIONS for v in versions)


def _allow_invalid_ca_bundle(old: Obj) -> bool:
    """allowInvalidCABundle: before the CRD is established, or when the stored bundle is already bad."""
    if not established(old):
        return True
    bundle = _ca_bundle_bytes(_dict(_dict(_dict(_spec(old).get("conversion")).get("webhook")).get("clientConfig"))
                              .get("caBundle"))
    if not bundle:
        return False
    return _ca_bundle_error(bundle) is not None


def _zero_status() -> Obj:
    """A zero CustomResourceDefinitionStatus as v1 serializes it (conditions and storedVersions
    are not omitempty: nil slices print as null; acceptedNames keeps plural and kind)."""
    return {"conditions": None, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": None}


def _record_storage_version(obj: Obj) -> None:
    """Append the storage version to status.storedVersions unless it is there (upstream's
    PrepareForCreate/PrepareForUpdate loop)."""
    if not any(v.get("storage") is True for v in _versions(_spec(obj))):
        return
    name = storage_version(obj)
    status = obj["status"]
    stored = status.get("storedVersions")
    stored = list(stored) if isinstance(stored, list) else []
    if name not in stored:
        stored.append(name)
        status["storedVersions"] = stored


def _normalized_spec(obj: Obj) -> Any:
    """The spec as upstream compares it (Semantic.DeepEqual of the defaulted, typed spec): v1
    defaults applied, nulls dropped, and v1's omitempty zero values treated as absent."""
    work = {"spec": copy.deepcopy(obj.get("spec"))}
    _default_spec(work)
    spec = _drop_nulls(work["spec"])
    if not isinstance(spec, dict):
        return spec
    if spec.get("preserveUnknownFields") is False:
        del spec["preserveUnknownFields"]
    names = spec.get("names")
    if isinstance(names, dict):
        for f in ("singular", "listKind", "shortNames", "categories"):
            if names.get(f) in ("", []):
                names.pop(f)
    for v in _versions(spec):
        for f, zero in (("deprecated", False), ("additionalPrinterColumns", []), ("selectableFields", []),
                        ("served", False), ("storage", False)):
            if v.get(f) == zero:
                v.pop(f)
        for col in _list(v.get("additionalPrinterColumns")):
            if isinstance(col, dict):
                for f, zero in (("format", ""), ("description", ""), ("priority", 0)):
                    if col.get(f) == zero:
                        col.pop(f)
    return spec


def _default_spec(obj: Obj) -> None:
    """SetDefaults_CustomResourceDefinitionSpec + SetDefaults_ServiceReference."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if names is None:
        names = spec["names"] = {}
    if isinstance(names, dict):
        kind = _str(names.get("kind"))
        if not _str(names.get("singular")) and kind:
            names["singular"] = kind.lower()
        if not _str(names.get("listKind")) and kind:
            names["listKind"] = kind + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}
    webhook = _dict(_dict(spec.get("conversion")).get("webhook"))
    service = _dict(webhook.get("clientConfig")).get("service")
    if isinstance(service, dict) and service.get("port") is None:
        service["port"] = 443


# ---------------------------------------------------------------------------------------------

def _validate_status_and_policies(obj: Obj, old: Obj | None) -> list[Cause]:
    """What create and update both end with: status, stored versions, API approval and
    preserveUnknownFields (the update rules relax for what `old` already had)."""
    status = _dict(obj.get("status"))
    causes = _validate_status(status)
    causes += _validate_stored_versions(status.get("storedVersions"), _versions(_spec(obj)))
    causes += _validate_api_approval(obj, old)
    causes += _validate_preserve_unknown_fields(obj, old)
    return causes


class CustomResourceDefinitionStrategy(Strategy):
    has_status = True
    tracks_generation = True
    allow_unconditional_update = False  # upstream: updates need a resourceVersion

    @property
    def validates_off_loop(self) -> bool:
        return True  # compiles and costs CEL rules, checks defaults against them: the CEL thread

    # -- delete -----------------------------------------------------------------------------

    def holds_deletion(self, obj: Obj) -> bool:
        """A definition is never removed at once: the first DELETE only marks it (upstream's
        REST.Delete), so that its objects can be deleted first (apiserver.crd.controller)."""
        return not (obj.get("metadata") or {}).get("deletionTimestamp")

    def mark_deleting(self, obj: Obj) -> None:
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CLEANUP_FINALIZER)

    # -- create -----------------------------------------------------------------------------

    def prepare_for_create(self, obj: Obj) -> None:
        """Status starts from zero with the storage version recorded (upstream PrepareForCreate)."""
        obj["status"] = _zero_status()
        _record_storage_version(obj)

    def default(self, obj: Obj) -> None:
        """v1 defaults: names.singular, names.listKind, conversion, webhook service port, and
        status.storedVersions when empty."""
        _default_spec(obj)
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("storedVersions"):
            name = storage_version(obj)
            if any(v.get("storage") is True for v in _versions(_spec(obj))):
                status["storedVersions"] = [name]

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        """ValidateCustomResourceDefinition."""
        spec = _spec(obj)
        required = crd_name(_str(spec.get("group")), _str(_dict(spec.get("names")).get("plural")))

        def name_fn(name: str, prefix: bool = False) -> list[str]:
            # upstream's closure ignores `prefix`: a generateName gets the plural.group check too
            msgs = name_is_dns_subdomain(name, prefix)
            return msgs if name == required else [*msgs, 'must be spec.names.plural+"."+spec.group']

        causes = validate_object_meta(obj.get("metadata") or {}, False, name_fn=name_fn)
        causes += _validate_spec(spec, _Options())
        return causes + _validate_status_and_policies(obj, None)

    # -- update -----------------------------------------------------------------------------

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Keep the stored status; a newly marked storage version joins status.storedVersions."""
        old_status = old.get("status")
        new["status"] = copy.deepcopy(old_status) if isinstance(old_status, dict) else _zero_status()
        _record_storage_version(new)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return _normalized_spec(new) != _normalized_spec(old)

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        """ValidateCustomResourceDefinitionUpdate."""
        spec, old_spec = _spec(new), _spec(old)
        opts = _Options(
            require_recognized_conversion_review_version=_valid_or_empty_review_versions(old_spec),
            require_immutable_names=established(old),
            require_openapi_schema=_all_versions_specify_schema(old_spec),
            allow_invalid_ca_bundle=_allow_invalid_ca_bundle(old),
        )
        causes = validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        causes += _validate_spec(spec, opts)
        names, old_names = _dict(spec.get("names")), _dict(old_spec.get("names"))
        if opts.require_immutable_names:
            causes += validate_immutable(_str(spec.get("scope")), _str(old_spec.get("scope")), "spec.scope")
            causes += validate_immutable(_str(names.get("kind")), _str(old_names.get("kind")), "spec.names.kind")
        causes += validate_immutable(_str(spec.get("group")), _str(old_spec.get("group")), "spec.group")
        causes += validate_immutable(_str(names.get("plural")), _str(old_names.get("plural")), "spec.names.plural")
        return causes + _validate_status_and_policies(new, old)

    # -- status -----------------------------------------------------------------------------

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateUpdateCustomResourceDefinitionStatus: metadata and status.acceptedNames (at
        v1.31 upstream leaves status.storedVersions to the writer of /status)."""
        causes = validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return causes + _validate_status(_dict(new.get("status")))
