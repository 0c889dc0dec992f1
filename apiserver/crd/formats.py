"""String formats of CRD schemas: kube-openapi's strfmt registry, limited to the formats CRDs support.

apiextensions' StripUnsupportedFormatsPostProcessor drops every other format; `format_check` gives
the check of a supported one.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable

from apimachinery.duration import parse_duration

# Go's regexp `$` is end-of-text, hence \Z; Go's \d and \s are ASCII, hence re.ASCII.

_UUID_RE = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z")
_UUID3_RE = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z")
_UUID4_RE = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}\Z")
_UUID5_RE = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}\Z")
# strfmt's HostnamePattern, with \p{S} mapped to "0" and \p{L} to "a" beforehand (see _is_hostname):
# one label, or dot-separated labels ending in a 2-63 letter top-level label.
_HOSTNAME_RE = re.compile(
    r"^([a-zA-Z0-9]((-?[a-zA-Z0-9]{0,62})?)|([a-zA-Z0-9](([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.)){1,}"
    r"([a-zA-Z]){2,63})\Z")
_DATE_TIME_RE = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))\Z")
_BASE64_RE = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})\Z")
_CREDIT_CARD_RE = re.compile(
    r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}"
    r"|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11})\Z", re.ASCII)
_ISBN10_RE = re.compile(r"^(?:[0-9]{9}X|[0-9]{10})\Z")
_ISBN13_RE = re.compile(r"^(?:[0-9]{13})\Z")
_HEXCOLOR_RE = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})\Z")
_RGB_PART = r"\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*"
_RGBCOLOR_RE = re.compile(rf"^rgb\({_RGB_PART},{_RGB_PART},{_RGB_PART}\)\Z", re.ASCII)
_SSN_RE = re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}\Z", re.ASCII)
_SHORT_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LONG_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DURATION_MATCHER = re.compile(r"((\d+)[\t\n\f\r ]*([A-Za-zµ]+))", re.ASCII)
_DURATION_UNITS = [["ns", "nano"], ["us", "µs", "micro"], ["ms", "milli"], ["s", "sec"], ["m", "min"],
                   ["h", "hr", "hour"], ["d", "day"], ["w", "wk", "week"]]
_EMAIL_ATEXT = re.compile(r"""[^\x00-\x20\x7f()<>\[\]:;@\\,".]+""")


def _is_date(s: str) -> bool:
    # time.Parse("2006-01-02", s): fixed widths, month 1..12, day within the month.
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", s)
    if m is None:
        return False
    y, mo, d = (int(g) for g in m.groups())
    if not 1 <= mo <= 12:
        return False
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]
    return 1 <= d <= days


def _is_date_time(s: str) -> bool:
    if len(s) < 4:
        return False
    parts = s.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    m = _DATE_TIME_RE.match(parts[1])
    return m is not None and m.group(1) <= "23" and m.group(2) <= "59" and m.group(3) <= "59"


def is_go_duration(s: str) -> bool:
    """time.ParseDuration accepts it: [-+]?([0-9]*(\\.[0-9]*)?unit)+ or "0"."""
    try:
        parse_duration(s)
    except ValueError:
        return False
    return True


def _is_duration(s: str) -> bool:
    # strfmt.ParseDuration: Go's syntax, else any "<digits> <unit>" pieces in the string.
    if is_go_duration(s):
        return True
    ok = False
    for m in _DURATION_MATCHER.finditer(s):
        if int(m.group(2)) > 2**63 - 1:
            return False
        unit = m.group(3).strip().lower()
        for variants in _DURATION_UNITS:
            last = len(variants) - 1
            for i, variant in enumerate(variants):
                if (i == last and unit.startswith(variant)) or variant.lower() == unit:
                    ok = True
    return ok


def _is_hostname(s: str) -> bool:
    mapped = "".join(
        "a" if c > "\x7f" and unicodedata.category(c).startswith("L")
        else "0" if c > "\x7f" and unicodedata.category(c).startswith("S") else c
        for c in s)
    if _HOSTNAME_RE.search(mapped) is None:
        return False
    raw = s.encode()
    return len(raw) <= 255 and all(len(p) <= 63 for p in raw.split(b"."))


def _parse_ipv4_sloppy(s: str) -> bool:
    # k8s.io/utils/net ParseIPSloppy: decimal fields, leading zeros allowed, each <= 255.
    parts = s.split(".")
    return len(parts) == 4 and all(p.isascii() and p.isdigit() and int(p) <= 255 for p in parts)


def _parse_ipv6(s: str) -> bool:
    if "%" in s or ":" not in s:
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def _is_ipv4(s: str) -> bool:
    return "." in s and (_parse_ipv4_sloppy(s) or _parse_ipv6(s))


def _is_ipv6(s: str) -> bool:
    if not _parse_ipv6(s):
        return False
    # net.ParseIP is strict about an embedded IPv4 part: no leading zeros.
    tail = s.rsplit(":", 1)[1]
    return "." not in tail or all(p == "0" or not p.startswith("0") for p in tail.split("."))


def _is_cidr(s: str) -> bool:
    addr, sep, mask = s.partition("/")
    if not sep or not mask.isascii() or not mask.isdigit():
        return False
    if _parse_ipv4_sloppy(addr):
        return int(mask) <= 32
    return _parse_ipv6(addr) and int(mask) <= 128


def _is_mac(s: str) -> bool:
    # net.ParseMAC: 6, 8 or 20 octets as xx:xx:.., xx-xx-.. or xxxx.xxxx...
    hexd = "0123456789abcdefABCDEF"
    if len(s) < 14:
        return False
    if s[2] in ":-":
        if (len(s) + 1) % 3 != 0 or (len(s) + 1) // 3 not in (6, 8, 20):
            return False
        groups = s.split(s[2])
        return all(len(g) == 2 and all(c in hexd for c in g) for g in groups)
    if s[4] == ".":
        if (len(s) + 1) % 5 != 0 or 2 * (len(s) + 1) // 5 not in (6, 8, 20):
            return False
        return all(len(g) == 4 and all(c in hexd for c in g) for g in s.split("."))
    return False


def _is_uri(s: str) -> bool:
    """url.ParseRequestURI: an absolute URI or an absolute path."""
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in s) or not s:
        return False
    scheme, rest = "", s
    for i, c in enumerate(s):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                break
            continue
        if c == ":":
            if i == 0:
                return False  # missing protocol scheme
            scheme, rest = s[:i], s[i + 1:]
        break
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    if re.search(r"%(?![0-9a-fA-F]{2})", rest):
        return False  # invalid URL escape
    if not rest.startswith("/"):
        return bool(scheme)  # opaque ("mailto:x") needs a scheme
    if scheme and rest.startswith("//"):
        authority = rest[2:].split("/", 1)[0]
        host = authority.rsplit("@", 1)[-1]
        if host.startswith("["):
            end = host.find("]")
            if end < 0:
                return False
            port = host[end + 1:]
            if port and (not port.startswith(":") or (not port[1:].isdigit() and port != ":")):
                return False
        else:
            host, _, port = host.partition(":") if host.count(":") <= 1 else (host, "", "")
            if port and not (port.isascii() and port.isdigit()):
                return False
            if any(c in ' <>"{}|\\^`' for c in host):
                return False
    return True


def _is_email(s: str) -> bool:
    """net/mail.ParseAddress, approximately: [display name] <addr-spec> or a bare addr-spec."""
    s = s.strip()
    m = re.fullmatch(r"(.*)<([^<>]*)>", s, re.S)
    addr = m.group(2) if m else s
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        return False

    def dot_atom(v: str) -> bool:
        return all(_EMAIL_ATEXT.fullmatch(p) for p in v.split("."))

    local_ok = dot_atom(local) or re.fullmatch(r'"(?:[^"\\\r\n]|\\.)*"', local) is not None
    domain_ok = dot_atom(domain) or re.fullmatch(r"\[[^\[\]\\]*\]", domain) is not None
    return local_ok and domain_ok


def _is_isbn10(s: str) -> bool:
    s = re.sub(r"[\s-]+", "", s, flags=re.ASCII)
    if not _ISBN10_RE.match(s):
        return False
    total = sum((i + 1) * int(s[i]) for i in range(9)) + (100 if s[9] == "X" else 10 * int(s[9]))
    return total % 11 == 0


def _is_isbn13(s: str) -> bool:
    s = re.sub(r"[\s-]+", "", s, flags=re.ASCII)
    if not _ISBN13_RE.match(s):
        return False
    total = sum((1, 3)[i % 2] * int(s[i]) for i in range(12))
    return int(s[12]) == (10 - total % 10) % 10


def _is_credit_card(s: str) -> bool:
    s = re.sub(r"[^0-9]+", "", s)
    if not _CREDIT_CARD_RE.match(s):
        return False
    total, double = 0, False
    for c in reversed(s):
        n = int(c) * (2 if double else 1)
        total += n % 10 + 1 if n >= 10 else n
        double = not double
    return total % 10 == 0


# Keyed by the normalized name (dashes removed, as strfmt's registry does).
_FORMATS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": lambda s: len(s) == 24 and all(c in "0123456789abcdefABCDEF" for c in s),
    "uri": _is_uri,
    "email": _is_email,
    "hostname": _is_hostname,
    "ipv4": _is_ipv4,
    "ipv6": _is_ipv6,
    "cidr": _is_cidr,
    "mac": _is_mac,
    "uuid": lambda s: _UUID_RE.match(s) is not None,
    "uuid3": lambda s: _UUID3_RE.match(s) is not None,
    "uuid4": lambda s: _UUID4_RE.match(s) is not None,
    "uuid5": lambda s: _UUID5_RE.match(s) is not None,
    "isbn": lambda s: _is_isbn10(s) or _is_isbn13(s),
    "isbn10": _is_isbn10,
    "isbn13": _is_isbn13,
    "creditcard": _is_credit_card,
    "ssn": lambda s: len(s) == 11 and _SSN_RE.match(s) is not None,
    "hexcolor": lambda s: _HEXCOLOR_RE.match(s) is not None,
    "rgbcolor": lambda s: _RGBCOLOR_RE.match(s) is not None,
    "byte": lambda s: _BASE64_RE.match(s) is not None,
    "password": lambda s: True,
    "date": _is_date,
    "duration": _is_duration,
    "datetime": _is_date_time,
    "k8sshortname": lambda s: len(s) <= 63 and _SHORT_NAME_RE.fullmatch(s) is not None,
    "k8slongname": lambda s: len(s) <= 253 and _LONG_NAME_RE.fullmatch(s) is not None,
}


def format_check(fmt: str) -> Callable[[str], bool] | None:
    """The check of string format `fmt`, or None if CRDs do not support it."""
    return _FORMATS.get(fmt.replace("-", ""))
