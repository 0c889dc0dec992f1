"""Field validators shared by every kind, with upstream's messages.

Two layers, as upstream (k8s.io/apimachinery/pkg/util/validation and .../api/validation):

* ``is_*`` string checks return a list of human messages (empty = valid), e.g.
  ``is_dns1123_subdomain("Foo")`` → ``["a lowercase RFC 1123 subdomain must consist of ..."]``.
* ``validate_*`` checks return a list of *causes* (``apimachinery.errors.field_cause`` dicts:
  reason / message / field) ready for ``apimachinery.errors.invalid(kind, name, causes)``.
  A cause's message is upstream's ``field.Error.ErrorBody()`` (``Invalid value: "x": detail``), so
  the Status message reads exactly like upstream's.

Field paths are plain strings in upstream's notation (``metadata.labels``, ``spec.ports[0].port``,
``metadata.annotations[key]``); ``child`` / ``index`` / ``key`` build them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from apimachinery.errors import field_cause
from apimachinery.quantity import QuantityError, parse_quantity

Cause = dict[str, str]

# ---------------------------------------------------------------------------------------------
# Cause builders (upstream field.Invalid / Required / ...). Reasons are metav1 CauseTypes.

FIELD_VALUE_INVALID = "FieldValueInvalid"
FIELD_VALUE_REQUIRED = "FieldValueRequired"
FIELD_VALUE_NOT_SUPPORTED = "FieldValueNotSupported"
FIELD_VALUE_DUPLICATE = "FieldValueDuplicate"
FIELD_VALUE_FORBIDDEN = "FieldValueForbidden"
FIELD_VALUE_TOO_LONG = "FieldValueTooLong"
FIELD_VALUE_TOO_MANY = "FieldValueTooMany"
FIELD_VALUE_NOT_FOUND = "FieldValueNotFound"
FIELD_VALUE_TYPE_INVALID = "FieldValueTypeInvalid"
INTERNAL_ERROR = "InternalError"

_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t", "\v": "\\v"}
_NEEDS_QUOTING = re.compile(r'["\\\x00-\x1f\x7f]')


def go_quote(s: str) -> str:
    """A string quoted as Go's ``%q`` prints it (printable Unicode kept, controls escaped)."""
    if _NEEDS_QUOTING.search(s) is None and s.isprintable():
        return f'"{s}"'
    out = []
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


_ATOI = re.compile(r"[+-]?[0-9]+")


def go_atoi(s: str) -> int:
    """Go's strconv.Atoi (an optional sign, decimal digits, within int64); ValueError with its
    reason ("invalid syntax" / "value out of range")."""
    if _ATOI.fullmatch(s) is None:
        raise ValueError("invalid syntax")
    v = int(s)
    if not -(2**63) <= v < 2**63:
        raise ValueError("value out of range")
    return v


class GoValue(str):
    """A bad value already rendered as upstream's field.Error prints it (Go's %#v of a non-scalar,
    e.g. `go_string_slice`): shown as it is."""


def go_string_slice(values: Iterable[str] | None) -> str:
    """A []string as Go's %#v prints it (what field.Invalid shows for one)."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def render_value(value: Any) -> str:
    """A bad value as upstream's field.Error prints it: %q for strings, %v for scalars, else JSON."""
    if isinstance(value, GoValue):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _with_detail(body: str, detail: str) -> str:
    return f"{body}: {detail}" if detail else body


#: A bad value upstream leaves out of the message (field.OmitValueType{}): "Invalid value: <detail>".
OMIT_VALUE: Any = object()


def invalid_cause(path: str, value: Any, detail: str = "") -> Cause:
    body = "Invalid value" if value is OMIT_VALUE else f"Invalid value: {render_value(value)}"
    return field_cause(path, _with_detail(body, detail), FIELD_VALUE_INVALID)


def required_cause(path: str, detail: str = "") -> Cause:
    return field_cause(path, _with_detail("Required value", detail), FIELD_VALUE_REQUIRED)


def forbidden_cause(path: str, detail: str = "") -> Cause:
    return field_cause(path, _with_detail("Forbidden", detail), FIELD_VALUE_FORBIDDEN)


def duplicate_cause(path: str, value: Any) -> Cause:
    return field_cause(path, f"Duplicate value: {render_value(value)}", FIELD_VALUE_DUPLICATE)


def not_found_cause(path: str, value: Any) -> Cause:
    return field_cause(path, f"Not found: {render_value(value)}", FIELD_VALUE_NOT_FOUND)


def not_supported_cause(path: str, value: Any, allowed: Iterable[Any] = ()) -> Cause:
    quoted = ", ".join(go_quote(str(v)) for v in allowed)
    detail = f"supported values: {quoted}" if quoted else ""
    return field_cause(path, _with_detail(f"Unsupported value: {render_value(value)}", detail),
                       FIELD_VALUE_NOT_SUPPORTED)


def too_long_cause(path: str, max_length: int) -> Cause:
    if max_length >= 0:
        detail = f"may not be more than {max_length} {'byte' if max_length == 1 else 'bytes'}"
    else:
        detail = "value is too long"
    return field_cause(path, f"Too long: {detail}", FIELD_VALUE_TOO_LONG)


def too_many_cause(path: str, actual: int, max_items: int) -> Cause:
    detail = f"must have at most {max_items} {'item' if max_items == 1 else 'items'}"
    return field_cause(path, f"Too many: {actual}: {detail}", FIELD_VALUE_TOO_MANY)


def type_invalid_cause(path: str, value: Any, detail: str = "") -> Cause:
    return field_cause(path, _with_detail(f"Invalid value: {render_value(value)}", detail),
                       FIELD_VALUE_TYPE_INVALID)


def internal_cause(path: str, detail: str) -> Cause:
    return field_cause(path, f"Internal error: {detail}", INTERNAL_ERROR)


# Path helpers: upstream field.Path rendering.
def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


# ---------------------------------------------------------------------------------------------
# String checks (upstream util/validation + api/validate/content). Each returns messages.

def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def _max_len_bytes_error(length: int) -> str:
    # api/validate/content (label keys/values) says "bytes" where util/validation says "characters".
    return f"must be no more than {length} bytes"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    # Upstream appends "'x', " per example joined by " or ", hence its double spaces.
    eg = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {eg}regex used for validation is '{fmt}')"


EMPTY_ERROR = "must be non-empty"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
DNS1123_LABEL_MAX_LENGTH = 63
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_ERR = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
DNS1035_LABEL_MAX_LENGTH = 63

# fullmatch on ASCII-only classes: `$` in Python would also accept a trailing newline.
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)


def _is_dns1123_subdomain(value: str, max_len_error_fn: Callable[[int], str]) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error_fn(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if _DNS1123_SUBDOMAIN_RE.fullmatch(value) is None:
        errs.append(regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """RFC 1123 subdomain (most object names): ≤253 chars, lowercase alnum, '-', '.'."""
    return _is_dns1123_subdomain(value, max_len_error)


def is_dns1123_label(value: str) -> list[str]:
    """RFC 1123 label (namespace, service names...): ≤63 chars, lowercase alnum and '-'."""
    errs = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if _DNS1123_LABEL_RE.fullmatch(value) is None:
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value) is not None:
            # A valid subdomain but not a label: the length was checked, so it must be dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """RFC 1035 label (service names): like a 1123 label but starting with a letter."""
    errs = []
    if len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if _DNS1035_LABEL_RE.fullmatch(value) is None:
        errs.append(regex_error(_DNS1035_LABEL_ERR, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


_QUALIFIED_NAME_CHAR_FMT = "[A-Za-z0-9]"
_QUALIFIED_NAME_EXT_CHAR_FMT = "[-A-Za-z0-9_.]"
_QUALIFIED_NAME_FMT = "(" + _QUALIFIED_NAME_CHAR_FMT + _QUALIFIED_NAME_EXT_CHAR_FMT + "*)?" + _QUALIFIED_NAME_CHAR_FMT
_QUALIFIED_NAME_ERR = ("must consist of alphanumeric characters, '-', '_' or '.', "
                       "and must start and end with an alphanumeric character")
QUALIFIED_NAME_MAX_LENGTH = 63
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_QUALIFIED_NAME_REGEX_ERR = regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")


def is_qualified_name(value: str) -> list[str]:
    """Label / annotation key: optional DNS-1123 subdomain prefix + '/' + name (≤63 chars)."""
    # Fast path for the overwhelmingly common valid case.
    if len(value) <= QUALIFIED_NAME_MAX_LENGTH and _QUALIFIED_NAME_RE.fullmatch(value) is not None:
        return []
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in _is_dns1123_subdomain(prefix, _max_len_bytes_error))
    else:
        return [
            "a valid label key "
            + regex_error(_QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + _max_len_bytes_error(QUALIFIED_NAME_MAX_LENGTH))
    if _QUALIFIED_NAME_RE.fullmatch(name) is None:
        errs.append("name part " + _QUALIFIED_NAME_REGEX_ERR)
    return errs


LABEL_VALUE_MAX_LENGTH = 63
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_ERR = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character")
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_REGEX_ERR = regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")


def is_valid_label_value(value: str) -> list[str]:
    """Label value: empty, or ≤63 chars of alnum/'-_.' starting and ending alphanumeric."""
    errs = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(_max_len_bytes_error(LABEL_VALUE_MAX_LENGTH))
    if _LABEL_VALUE_RE.fullmatch(value) is None:
        errs.append(_LABEL_VALUE_REGEX_ERR)
    return errs


def is_valid_port_num(port: int) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def is_in_range(value: int, lo: int, hi: int) -> list[str]:
    return [] if lo <= value <= hi else [inclusive_range_error(lo, hi)]


_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_ONE_LETTER_RE = re.compile("[a-z]")


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME: ≤15 chars of [-a-z0-9], at least one letter, no leading/trailing/double '-'."""
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if _PORT_NAME_CHARSET_RE.fullmatch(port) is None:
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if _PORT_NAME_ONE_LETTER_RE.search(port) is None:
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_NAME_ERR = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
                     "or '.', and must not start with a digit")
_ENV_VAR_NAME_RE = re.compile(_ENV_VAR_NAME_FMT)


def _chdir_prefix_errors(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_env_var_name(value: str) -> list[str]:
    errs = []
    if _ENV_VAR_NAME_RE.fullmatch(value) is None:
        errs.append(regex_error(_ENV_VAR_NAME_ERR, _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _chdir_prefix_errors(value)


_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_ERR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_MAP_KEY_RE = re.compile(_CONFIG_MAP_KEY_FMT)


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if _CONFIG_MAP_KEY_RE.fullmatch(value) is None:
        errs.append(regex_error(_CONFIG_MAP_KEY_ERR, _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _chdir_prefix_errors(value)


_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(_PERCENT_FMT)


def is_valid_percent(value: str) -> list[str]:
    if _PERCENT_RE.fullmatch(value) is None:
        return [regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                            _PERCENT_FMT, "1%", "93%")]
    return []


# ---------------------------------------------------------------------------------------------
# Name functions (upstream ValidateNameFunc: (name, prefix) -> messages). `prefix` is True when
# the value is a generateName, to which random characters will be appended.

NameFunc = Callable[[str, bool], list[str]]


def _mask_trailing_dash(name: str) -> str:
    # Mirrors upstream's maskTrailingDash, which replaces the last *two* characters with "a".
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def validate_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """Names used as a URL path segment (every object name): not '.', '..', no '/' or '%'."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def _validate_with(check: Callable[[str], list[str]], value: str, path: str) -> list[Cause]:
    return [invalid_cause(path, value, msg) for msg in check(value)]


def validate_dns1123_label(value: str, path: str) -> list[Cause]:
    return _validate_with(is_dns1123_label, value, path)


def validate_dns1123_subdomain(value: str, path: str) -> list[Cause]:
    return _validate_with(is_dns1123_subdomain, value, path)


def validate_dns1035_label(value: str, path: str) -> list[Cause]:
    return _validate_with(is_dns1035_label, value, path)


def validate_qualified_name(value: str, path: str) -> list[Cause]:
    return _validate_with(is_qualified_name, value, path)


# ---------------------------------------------------------------------------------------------
# Generic field checks.

IS_NEGATIVE_ERROR_MSG = "must be greater than or equal to 0"
FIELD_IMMUTABLE_ERROR_MSG = "field is immutable"


def validate_required(value: Any, path: str, detail: str = "") -> list[Cause]:
    """Required value: None, "", empty list/dict count as missing (0 and False do not)."""
    if value is None or (isinstance(value, (str, list, dict)) and not value):
        return [required_cause(path, detail)]
    return []


def validate_nonnegative(value: Any, path: str) -> list[Cause]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid_cause(path, value, IS_NEGATIVE_ERROR_MSG)]
    return []


def validate_immutable(new: Any, old: Any, path: str) -> list[Cause]:
    """Upstream ValidateImmutableField (semantic deep equality of JSON values)."""
    return [] if new == old else [invalid_cause(path, new, FIELD_IMMUTABLE_ERROR_MSG)]


def validate_enum(value: Any, allowed: Iterable[Any], path: str, required: bool = True) -> list[Cause]:
    """One of `allowed` (upstream field.NotSupported lists them in the given order)."""
    allowed = list(allowed)
    if value is None or value == "":
        return [required_cause(path, "")] if required else []
    if value not in allowed:
        return [not_supported_cause(path, value, allowed)]
    return []


def validate_port(port: Any, path: str) -> list[Cause]:
    """A port number 1..65535."""
    if isinstance(port, bool) or not isinstance(port, int):
        return [type_invalid_cause(path, port, "must be an integer")] if port is not None else [
            required_cause(path, "")]
    return [invalid_cause(path, port, msg) for msg in is_valid_port_num(port)]


def validate_port_name(name: str, path: str) -> list[Cause]:
    return _validate_with(is_valid_port_name, name, path)


def validate_port_num_or_name(value: Any, path: str) -> list[Cause]:
    """An int-or-string port reference (e.g. targetPort): 1..65535, or an IANA_SVC_NAME."""
    if isinstance(value, str):
        return validate_port_name(value, path)
    return validate_port(value, path)


_IPV4_SLOPPY = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")


_IP_INVALID = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_IP_LEADING_ZEROS = "must not have leading 0s"
_IP_MAPPED = "must not be an IPv4-mapped IPv6 address"
_CIDR_INVALID = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def is_valid_ip(value: str) -> list[str]:
    """An IP address with upstream's strict rules (no leading zeros, no IPv4-mapped IPv6)."""
    try:
        if "%" in value:  # zones are not IPs to Go
            raise ValueError(value)
        addr = ipaddress.ip_address(value)
    except ValueError:
        if _IPV4_SLOPPY.fullmatch(value) and all(int(o) <= 255 for o in value.split(".")):
            return [_IP_LEADING_ZEROS]  # Go's sloppy parser reads it, the strict one does not
        return [_IP_INVALID]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return [_IP_MAPPED]
    return []


def _cidr_errors(value: str) -> list[str]:
    ip, sep, prefix = value.partition("/")
    if not sep or not (prefix.isascii() and prefix.isdigit()):
        return [_CIDR_INVALID]
    ip_errs = is_valid_ip(ip)
    if ip_errs and ip_errs[0] == _IP_INVALID:
        return [_CIDR_INVALID]
    if ip_errs == [_IP_LEADING_ZEROS] or (len(prefix) > 1 and prefix[0] == "0"):
        return ["must not have leading 0s in IP or prefix length"]
    if ip_errs:
        return ["must not have an IPv4-mapped IPv6 address"]
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        return ["must not have bits set beyond the prefix length"] if "host bits" in str(e) else [_CIDR_INVALID]
    return []


def is_valid_cidr(value: str) -> list[str]:
    """A subnet in CIDR form (upstream strict rules: no host bits, no leading zeros)."""
    return _cidr_errors(value)


def validate_ip_address(value: str, path: str) -> list[Cause]:
    return _validate_with(is_valid_ip, value, path)


def validate_cidr(value: str, path: str) -> list[Cause]:
    return _validate_with(is_valid_cidr, value, path)


# ---------------------------------------------------------------------------------------------
# ObjectMeta (upstream apimachinery/pkg/api/validation/objectmeta.go + meta/v1/validation).

TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * (1 << 10)  # 256 KiB
FINALIZER_ORPHAN_DEPENDENTS = "orphan"
FINALIZER_DELETE_DEPENDENTS = "foregroundDeletion"


def _type_check(value: Any, expected: type, path: str, type_name: str) -> list[Cause]:
    if value is not None and not isinstance(value, expected):
        return [type_invalid_cause(path, value, f"must be of type {type_name}")]
    return []


def validate_labels(labels: Mapping[str, Any] | None, path: str = "metadata.labels") -> list[Cause]:
    """Keys are qualified names, values label values (causes name the map, as upstream)."""
    if not labels:
        return []
    if not isinstance(labels, Mapping):
        return _type_check(labels, dict, path, "object")
    causes: list[Cause] = []
    for k, v in labels.items():
        causes.extend(invalid_cause(path, k, m) for m in is_qualified_name(k))
        if not isinstance(v, str):
            causes.append(type_invalid_cause(key(path, k), v, "must be of type string"))
            continue
        causes.extend(invalid_cause(path, v, m) for m in is_valid_label_value(v))
    return causes


def validate_annotations(annotations: Mapping[str, Any] | None,
                         path: str = "metadata.annotations") -> list[Cause]:
    """Keys are qualified names (case-insensitively); keys+values ≤ 256 KiB in total."""
    if not annotations:
        return []
    if not isinstance(annotations, Mapping):
        return _type_check(annotations, dict, path, "object")
    causes: list[Cause] = []
    total = 0
    for k, v in annotations.items():
        causes.extend(invalid_cause(path, k, m) for m in is_qualified_name(k.lower()))
        if not isinstance(v, str):
            causes.append(type_invalid_cause(key(path, k), v, "must be of type string"))
            continue
        total += len(k.encode()) + len(v.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        causes.append(too_long_cause(path, TOTAL_ANNOTATION_SIZE_LIMIT_B))
    return causes


def _group_version_ok(api_version: str) -> bool:
    """Upstream schema.ParseGroupVersion + a non-empty version."""
    parts = api_version.split("/")
    if len(parts) == 1:
        return bool(parts[0])
    return len(parts) == 2 and bool(parts[1])


def validate_owner_references(refs: Any, path: str = "metadata.ownerReferences") -> list[Cause]:
    if not refs:
        return []
    if not isinstance(refs, list):
        return _type_check(refs, list, path, "array")
    causes: list[Cause] = []
    first_controller = ""
    for i, ref in enumerate(refs):
        p = index(path, i)
        if not isinstance(ref, Mapping):
            causes.append(type_invalid_cause(p, ref, "must be of type object"))
            continue
        api_version = ref.get("apiVersion") or ""
        if not api_version:
            causes.append(required_cause(child(p, "apiVersion"), "must not be empty"))
        elif not _group_version_ok(api_version):
            causes.append(invalid_cause(child(p, "apiVersion"), api_version, "must be <group>/<version> or <version>"))
        for name in ("kind", "name", "uid"):
            if not ref.get(name):
                causes.append(required_cause(child(p, name), "must not be empty"))
        if api_version == "v1" and ref.get("kind") == "Event":
            causes.append(invalid_cause(p, dict(ref), "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if first_controller:
                causes.append(invalid_cause(
                    path, list(refs),
                    "Only one reference can have Controller set to true. Found \"true\" in references for "
                    f"{first_controller} and {current}"))
            else:
                first_controller = current
    return causes


def validate_finalizers(finalizers: Any, path: str = "metadata.finalizers") -> list[Cause]:
    if not finalizers:
        return []
    if not isinstance(finalizers, list):
        return _type_check(finalizers, list, path, "array")
    causes: list[Cause] = []
    for f in finalizers:
        if not isinstance(f, str):
            causes.append(type_invalid_cause(path, f, "must be of type string"))
            continue
        causes.extend(invalid_cause(path, f, m) for m in is_qualified_name(f))
    if FINALIZER_ORPHAN_DEPENDENTS in finalizers and FINALIZER_DELETE_DEPENDENTS in finalizers:
        causes.append(invalid_cause(path, list(finalizers), f"finalizer {FINALIZER_ORPHAN_DEPENDENTS} and "
                                                            f"{FINALIZER_DELETE_DEPENDENTS} cannot be both set"))
    return causes


def validate_object_meta(meta: Mapping[str, Any] | None, namespaced: bool, path: str = "metadata",
                         name_fn: NameFunc = name_is_dns_subdomain) -> list[Cause]:
    """Create-time ObjectMeta checks (upstream ValidateObjectMeta).

    Call it after generating a name from generateName, as upstream does: a missing name is
    reported as ``Required value: name or generateName is required``. `name_fn` is the kind's name
    rule (``name_is_dns_subdomain`` for most kinds, ``name_is_dns_label`` for Namespaces/Services,
    ``name_is_dns1035_label`` ...); it also checks generateName as a prefix.
    """
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        return _type_check(meta, dict, path, "object")
    causes: list[Cause] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        causes.extend(invalid_cause(child(path, "generateName"), generate_name, m)
                      for m in name_fn(generate_name, True))
    name = meta.get("name") or ""
    if not name:
        causes.append(required_cause(child(path, "name"), "name or generateName is required"))
    elif not isinstance(name, str):
        causes.append(type_invalid_cause(child(path, "name"), name, "must be of type string"))
    else:
        causes.extend(invalid_cause(child(path, "name"), name, m) for m in name_fn(name, False))
    causes.extend(_validate_meta_common(meta, namespaced, path))
    return causes


def _validate_meta_common(meta: Mapping[str, Any], namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(required_cause(child(path, "namespace"), ""))
        else:
            causes.extend(invalid_cause(child(path, "namespace"), namespace, m)
                          for m in name_is_dns_label(namespace, False))
    elif namespace:
        causes.append(forbidden_cause(child(path, "namespace"), "not allowed on this type"))
    causes.extend(validate_nonnegative(meta.get("generation"), child(path, "generation")))
    causes.extend(validate_labels(meta.get("labels"), child(path, "labels")))
    causes.extend(validate_annotations(meta.get("annotations"), child(path, "annotations")))
    causes.extend(validate_owner_references(meta.get("ownerReferences"), child(path, "ownerReferences")))
    causes.extend(validate_finalizers(meta.get("finalizers"), child(path, "finalizers")))
    return causes


def validate_object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                path: str = "metadata") -> list[Cause]:
    """Update-time ObjectMeta checks (upstream ValidateObjectMetaUpdate).

    Expects the new object's resourceVersion to be set (upstream fills it for unconditional
    updates before validating); name, namespace, uid, creationTimestamp, deletionTimestamp and
    deletionGracePeriodSeconds are immutable; generation may not go down; no finalizer may be
    added once deletionTimestamp is set.
    """
    causes: list[Cause] = []
    if old.get("deletionTimestamp"):
        old_finalizers = set(old.get("finalizers") or [])
        extra = sorted(set(new.get("finalizers") or []) - old_finalizers)
        if extra:
            causes.append(forbidden_cause(
                child(path, "finalizers"),
                "no new finalizers can be added if the object is being deleted, found new finalizers "
                + go_string_slice(extra)))
    rv = new.get("resourceVersion") or ""
    if not rv:
        causes.append(invalid_cause(child(path, "resourceVersion"), rv, "must be specified for an update"))
    new_gen, old_gen = new.get("generation") or 0, old.get("generation") or 0
    causes.extend(validate_nonnegative(new_gen, child(path, "generation")))
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        causes.append(invalid_cause(child(path, "generation"), new_gen, "must not be decremented"))
    for name in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                 "deletionGracePeriodSeconds"):
        causes.extend(validate_immutable(new.get(name) or _ZERO.get(name), old.get(name) or _ZERO.get(name),
                                         child(path, name)))
    causes.extend(validate_labels(new.get("labels"), child(path, "labels")))
    causes.extend(validate_annotations(new.get("annotations"), child(path, "annotations")))
    causes.extend(validate_owner_references(new.get("ownerReferences"), child(path, "ownerReferences")))
    return causes


# Absent and empty compare equal for immutable fields (Go zero values).
_ZERO: dict[str, Any] = {"name": "", "namespace": "", "uid": "", "creationTimestamp": None,
                         "deletionTimestamp": None, "deletionGracePeriodSeconds": None}


# ---------------------------------------------------------------------------------------------
# metav1.LabelSelector (upstream meta/v1/validation ValidateLabelSelector).

_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_selector(selector: Mapping[str, Any] | None, path: str = "spec.selector",
                            allow_invalid_label_value: bool = False) -> list[Cause]:
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return _type_check(selector, dict, path, "object")
    causes = validate_labels(selector.get("matchLabels"), child(path, "matchLabels"))
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        return [*causes, *_type_check(exprs, list, child(path, "matchExpressions"), "array")]
    for i, expr in enumerate(exprs):
        p = index(child(path, "matchExpressions"), i)
        if not isinstance(expr, Mapping):
            causes.append(type_invalid_cause(p, expr, "must be of type object"))
            continue
        op = expr.get("operator") or ""
        values = expr.get("values") or []
        causes += _requirement_operator_causes(op, values, p, numeric=False)
        causes.extend(invalid_cause(child(p, "key"), expr.get("key") or "", m)
                      for m in is_qualified_name(expr.get("key") or ""))
        if not allow_invalid_label_value:
            for j, v in enumerate(values):
                if not isinstance(v, str):
                    causes.append(type_invalid_cause(index(child(p, "values"), j), v, "must be of type string"))
                    continue
                causes.extend(invalid_cause(index(child(p, "values"), j), v, m) for m in is_valid_label_value(v))
    return causes


def _requirement_operator_causes(op: str, values: Any, path: str, numeric: bool) -> list[Cause]:
    """The operator and how many values it takes: a label selector's requirement, or (`numeric`,
    with Gt and Lt) a node selector's."""
    if op in ("In", "NotIn"):
        if not values:
            return [required_cause(child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'")]
    elif op in ("Exists", "DoesNotExist"):
        if values:
            return [forbidden_cause(child(path, "values"),
                                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]
    elif numeric and op in ("Gt", "Lt"):
        if not isinstance(values, list) or len(values) != 1:
            return [required_cause(child(path, "values"), "must be specified single value when `operator` is 'Lt' or 'Gt'")]
    else:
        return [invalid_cause(child(path, "operator"), op, "not a valid selector operator")]
    return []


# ---------------------------------------------------------------------------------------------
# core/v1 NodeSelector (upstream ValidateNodeSelector and friends, 1.31: values not checked as
# label values), in node affinity and a PersistentVolume's nodeAffinity.

NODE_FIELD_SELECTOR_KEYS = {"metadata.name": name_is_dns_subdomain}  # upstream nodeFieldSelectorValidators


def _requirements(term: Mapping[str, Any], name: str, path: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    reqs = term.get(name) or []
    for j, req in enumerate(reqs if isinstance(reqs, list) else []):
        yield (req if isinstance(req, Mapping) else {}), index(child(path, name), j)


def validate_node_selector_term(term: Any, path: str) -> list[Cause]:
    if term is None:
        return []
    if not isinstance(term, Mapping):
        return _type_check(term, dict, path, "object")
    causes: list[Cause] = []
    for req, p in _requirements(term, "matchExpressions", path):
        causes += _requirement_operator_causes(req.get("operator") or "", req.get("values") or [], p, numeric=True)
        causes += validate_qualified_name(str(req.get("key") or ""), child(p, "key"))
    for req, p in _requirements(term, "matchFields", path):
        op, values = req.get("operator") or "", req.get("values") or []
        if op in ("In", "NotIn"):
            if not isinstance(values, list) or len(values) != 1:
                causes.append(required_cause(child(p, "values"),
                                             "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"))
        else:
            causes.append(invalid_cause(child(p, "operator"), op, "not a valid selector operator"))
        field_key = req.get("key") or ""
        check = NODE_FIELD_SELECTOR_KEYS.get(field_key) if isinstance(field_key, str) else None
        if check is None:
            causes.append(invalid_cause(child(p, "key"), field_key, "not a valid field selector key"))
            continue
        for i, v in enumerate(values if isinstance(values, list) else []):
            causes.extend(invalid_cause(index(child(p, "values"), i), v, m) for m in check(str(v)))
    return causes


def validate_node_selector(selector: Any, path: str) -> list[Cause]:
    if not isinstance(selector, Mapping):
        return _type_check(selector, dict, path, "object")
    terms_path = child(path, "nodeSelectorTerms")
    terms = selector.get("nodeSelectorTerms") or []
    if not isinstance(terms, list):
        return _type_check(terms, list, terms_path, "array")
    if not terms:
        return [required_cause(terms_path, "must have at least one node selector term")]
    causes: list[Cause] = []
    for i, term in enumerate(terms):
        causes += validate_node_selector_term(term, index(terms_path, i))
    return causes


def validate_preferred_scheduling_terms(terms: Any, path: str) -> list[Cause]:
    if not isinstance(terms, list):
        return _type_check(terms, list, path, "array")
    causes: list[Cause] = []
    for i, term in enumerate(terms):
        term = term if isinstance(term, Mapping) else {}
        weight = term.get("weight") or 0
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
            causes.append(invalid_cause(child(index(path, i), "weight"), weight, "must be in the range 1-100"))
        causes += validate_node_selector_term(term.get("preference"), child(index(path, i), "preference"))
    return causes


def validate_quantity(value: Any, path: str, nonnegative: bool = True) -> list[Cause]:
    """A resource quantity (string or number); upstream rejects negative requests and limits."""
    try:
        q = parse_quantity(value)
    except QuantityError as e:
        return [invalid_cause(path, value, str(e))]
    if nonnegative and q < 0:
        return [invalid_cause(path, value, IS_NEGATIVE_ERROR_MSG)]
    return []
