"""resource.Quantity (k8s.io/apimachinery/pkg/api/resource) as exact decimals.

``parse_quantity("128Mi")`` returns a ``Quantity``: a ``decimal.Decimal`` holding the exact value
(rounded up to nano units and capped as upstream does) that also remembers its ``format``
(BinarySI "Ki", DecimalSI "k", DecimalExponent "e3"), so ``format_quantity`` can emit upstream's
canonical string ("1.5Gi" → "1536Mi", "0.1" → "100m", "1000M" → "1G"). Arithmetic on Quantities
yields plain Decimals (comparisons just work); use ``format_quantity(d, fmt)`` to print those.

Decimal arithmetic is rounded to the context precision (28 digits by default), which exact sums of
nano-precision values near 2^63 can exceed; the ``resource_list_*`` helpers therefore work on ints
(millicores for cpu, plain units — bytes — for everything else), which is what the scheduler and
the kubelet compare.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from apimachinery.podutil import is_restartable_init_container

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"

SPLIT_RE_STRING = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG = f"quantities must match the regular expression '{SPLIT_RE_STRING}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_NANO = -9
_MAX_INT64_FACTORS = 18


class QuantityError(ValueError):
    """A string that is not a quantity; the message is upstream's error text."""


class Quantity(Decimal):
    """An exact quantity value plus the format it was written in (and upstream's cached string)."""

    __slots__ = ("_s", "format")

    format: str
    _s: str | None

    def __new__(cls, value: Any = "0", fmt: str = DECIMAL_SI, canonical: str | None = None) -> Quantity:
        self = Decimal.__new__(cls, value)
        self.format = fmt
        self._s = canonical
        return self

    def __str__(self) -> str:
        return format_quantity(self)

    def __repr__(self) -> str:
        return f"Quantity({format_quantity(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Quantity, (Decimal(self), self.format, self._s))

    def __copy__(self) -> Quantity:
        return self

    def __deepcopy__(self, memo: Any) -> Quantity:
        return self


_DEC_SUFFIXES = {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")


def _interpret_suffix(suffix: str) -> tuple[int, int, str] | None:
    """(base, exponent, format) of a suffix, as upstream's suffixer."""
    e = _DEC_SUFFIXES.get(suffix)
    if e is not None:
        return 10, e, DECIMAL_SI
    e = _BIN_SUFFIXES.get(suffix)
    if e is not None:
        return 2, e, BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        exp = suffix[1:]
        body = exp[1:] if exp[0] in "+-" else exp
        if body and all(c in _DIGITS for c in body):
            return 10, int(exp), DECIMAL_EXPONENT
    return None


def _scan(s: str) -> tuple[bool, str, str, str]:
    """Upstream parseQuantityString: (positive, numerator digits, denominator digits, suffix)."""
    positive = True
    pos, end = 0, len(s)
    if s[0] == "-":
        positive, pos = False, 1
    elif s[0] == "+":
        pos = 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos] in _DIGITS:
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT_WRONG)
    return positive, num, denom, s[suffix_start:]


def _ceil_div_away(n: int, d: int) -> int:
    """n / d rounded away from zero (d > 0)."""
    q, r = divmod(abs(n), d)
    if r:
        q += 1
    return q if n >= 0 else -q


def _parse(s: str) -> Quantity:
    if not s:
        raise QuantityError(ERR_FORMAT_WRONG)
    if s == "0":
        return Quantity(0, DECIMAL_SI, "0")
    positive, num, denom, suffix = _scan(s)
    interpreted = _interpret_suffix(suffix)
    if interpreted is None:
        raise QuantityError(ERR_SUFFIX)
    base, exponent, fmt = interpreted

    # Upstream keeps the input string as the serialized form when its int64 fast path finds the
    # input already canonical; that is why "+1" and "01" round-trip unchanged.
    reuse = False
    shifted = num + denom
    if base == 10:
        scale = exponent - len(denom)
        if len(shifted) <= _MAX_INT64_FACTORS and scale >= _NANO:
            reuse = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
    elif not denom and len(num) <= 15 - int(exponent * 3 / 10) - 1:
        value = int(num) << exponent
        reuse = value <= _INT64_MAX and int(num) & 7 != 0

    # Exact value = mantissa * 10**exp10 (binary suffixes multiply the mantissa by 2**exponent).
    mantissa = int(shifted)
    exp10 = -len(denom)
    if base == 10:
        exp10 += exponent
    else:
        mantissa <<= exponent
    if exp10 < _NANO and mantissa:
        # Round non-zero values up (away from zero) to 1n: asking for a little gets a little.
        drop = _NANO - exp10
        mantissa = 1 if drop > len(shifted) + 20 else _ceil_div_away(mantissa, 10**drop)
        exp10 = _NANO
    if fmt == BINARY_SI:
        if exp10 >= 0 and mantissa * 10**exp10 > _INT64_MAX:
            mantissa, exp10 = _INT64_MAX, 0
        elif mantissa and exp10 < 0 and mantissa < 10**-exp10:
            fmt = DECIMAL_SI  # a fraction of one cannot be written with a binary suffix
    if not positive:
        mantissa = -mantissa
    value = Decimal((1 if mantissa < 0 else 0, tuple(int(c) for c in str(abs(mantissa))), exp10))
    return Quantity(value, fmt, s if reuse else None)


@lru_cache(maxsize=4096)
def _parse_cached(s: str) -> Quantity:
    return _parse(s)


def parse_quantity(s: str | int | float | Decimal) -> Quantity:
    """Parse a quantity string (or a JSON number) exactly; QuantityError on bad input."""
    if isinstance(s, Quantity):
        return s
    if isinstance(s, str):
        return _parse_cached(s)
    if isinstance(s, bool) or not isinstance(s, (int, float, Decimal)):
        raise QuantityError(ERR_FORMAT_WRONG)
    if isinstance(s, int):
        return _parse_cached(str(s))
    if isinstance(s, float) and (s != s or s in (float("inf"), float("-inf"))):
        raise QuantityError(ERR_FORMAT_WRONG)
    if isinstance(s, Decimal) and not s.is_finite():
        raise QuantityError(ERR_FORMAT_WRONG)
    return _parse_cached(repr(s) if isinstance(s, float) else str(s))


def is_quantity(s: Any) -> bool:
    try:
        parse_quantity(s)
    except QuantityError:
        return False
    return True


def _mantissa_exp(d: Decimal) -> tuple[int, int]:
    sign, digits, exp = d.as_tuple()
    n = int("".join(map(str, digits))) if digits else 0
    return (-n if sign else n), int(exp)


def scaled_value(q: Quantity | Decimal | str | int | float, scale: int) -> int:
    """ceil(q / 10**scale), rounding away from zero, clamped to int64 (upstream ScaledValue)."""
    if not isinstance(q, Decimal):
        q = parse_quantity(q)
    n, exp = _mantissa_exp(q)
    shift = exp - scale
    if n == 0:
        return 0
    if shift >= 0:
        if shift > 19:
            return _INT64_MAX if n > 0 else _INT64_MIN
        v = n * 10**shift
    else:
        v = _ceil_div_away(n, 10**-shift) if -shift <= len(str(abs(n))) + 1 else (1 if n > 0 else -1)
    return max(_INT64_MIN, min(_INT64_MAX, v))


def value(q: Quantity | Decimal | str | int | float) -> int:
    """The value rounded up (away from zero) to an integer, as upstream Quantity.Value()."""
    return scaled_value(q, 0)


def milli_value(q: Quantity | Decimal | str | int | float) -> int:
    """ceil(q * 1000), as upstream Quantity.MilliValue() (e.g. cpu "100m" → 100, "0.5" → 500)."""
    return scaled_value(q, -3)


_DEC_SUFFIX_OF_EXP = {e: s for s, e in _DEC_SUFFIXES.items()}
_BIN_SUFFIX_OF_EXP = {0: ""} | {e // 10: s for s, e in _BIN_SUFFIXES.items()}


def format_quantity(q: Quantity | Decimal | str | int | float, fmt: str | None = None) -> str:
    """Upstream's canonical string: no fractional digits, the largest suffix without losing precision.

    Strings and numbers are parsed first, so this also canonicalizes user input
    ("1.5Gi" → "1536Mi", "0.1" → "100m"). ``fmt`` overrides the remembered format (plain Decimals
    default to DecimalSI).
    """
    if not isinstance(q, Decimal):
        q = parse_quantity(q)
    if isinstance(q, Quantity):
        if fmt is None or fmt == q.format:
            if q._s is not None:
                return q._s
            fmt = q.format
    elif fmt is None:
        fmt = DECIMAL_SI
    n, exp = _mantissa_exp(q)
    if n == 0:
        return "0"
    if fmt == BINARY_SI:
        if -1024 < q < 1024:
            fmt = DECIMAL_SI
        elif exp < 0 and n % 10**-exp:
            fmt = DECIMAL_SI  # not an integer: binary would lose precision
        else:
            whole = n * 10**exp if exp >= 0 else n // 10**-exp
            sign = "-" if whole < 0 else ""
            whole = abs(whole)
            times = 0
            while times < 6 and whole >= 1024 and whole % 1024 == 0:
                whole //= 1024
                times += 1
            return f"{sign}{whole}{_BIN_SUFFIX_OF_EXP[times]}"
    # Decimal forms: move factors of ten into the exponent, then make it a multiple of three.
    sign = "-" if n < 0 else ""
    n = abs(n)
    while n >= 10 and n % 10 == 0:
        n //= 10
        exp += 1
    rem = exp % 3
    if rem:
        n *= 10**rem
        exp -= rem
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{n}e{exp}" if exp else f"{sign}{n}"
    if exp > 18:
        # Beyond "E" upstream emits no suffix at all (a wrong value); stay exact instead.
        n *= 10 ** (exp - 18)
        exp = 18
    elif exp < -9:
        n_str = str(n)
        return f"{sign}{n_str}e{exp}"
    return f"{sign}{n}{_DEC_SUFFIX_OF_EXP[exp]}"


def new_quantity(v: int | Decimal, fmt: str = DECIMAL_SI) -> Quantity:
    """A Quantity for an exact value (upstream NewQuantity / NewDecimalQuantity)."""
    return Quantity(v, fmt)


def new_milli_quantity(milli: int, fmt: str = DECIMAL_SI) -> Quantity:
    """A Quantity of milli/1000 (upstream NewMilliQuantity), e.g. 250 → "250m"."""
    return Quantity(Decimal((1 if milli < 0 else 0, tuple(int(c) for c in str(abs(milli))), -3)), fmt)


def canonical_or_error(s: Any) -> str:
    """Canonical form of a user-supplied quantity (for defaulting on write); QuantityError if bad."""
    return format_quantity(parse_quantity(s))


# --- resource lists (dict resource-name → quantity) as ints, for scheduler and kubelet -------

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"


@lru_cache(maxsize=4096)
def _int_of(name_is_cpu: bool, s: str) -> int:
    q = _parse_cached(s)
    return milli_value(q) if name_is_cpu else value(q)


def resource_int(name: str, q: str | int | float | Decimal) -> int:
    """One resource amount as an int: millicores for cpu, plain units (bytes, counts) otherwise."""
    if isinstance(q, str):
        return _int_of(name == CPU, q)
    return milli_value(q) if name == CPU else value(q)


def resource_list_ints(rl: Mapping[str, Any] | None) -> dict[str, int]:
    """A ResourceList dict ({"cpu": "500m", "memory": "1Gi"}) as ints ({"cpu": 500, "memory": 1073741824})."""
    if not rl:
        return {}
    return {name: resource_int(name, q) for name, q in rl.items()}


def resource_list_add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Sum of two int resource lists (missing names count as 0)."""
    out = dict(a)
    for name, v in b.items():
        out[name] = out.get(name, 0) + v
    return out


def resource_list_sub(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """a - b per name (may go negative)."""
    out = dict(a)
    for name, v in b.items():
        out[name] = out.get(name, 0) - v
    return out


def resource_list_max(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Per-name maximum of two int resource lists."""
    out = dict(a)
    for name, v in b.items():
        cur = out.get(name)
        if cur is None or v > cur:
            out[name] = v
    return out


def resource_list_fits(requested: Mapping[str, int], allocatable: Mapping[str, int],
                       used: Mapping[str, int] | None = None) -> list[str]:
    """Names whose request does not fit: requested + used > allocatable (missing allocatable = 0).

    Empty list = fits. Zero requests always fit (upstream skips them). Sorted for stable messages
    ("Insufficient cpu").
    """
    used = used or {}
    short = []
    for name, req in requested.items():
        if req <= 0:
            continue
        if req + used.get(name, 0) > allocatable.get(name, 0):
            short.append(name)
    return sorted(short)


def _container_requests(c: Mapping[str, Any]) -> dict[str, int]:
    res = c.get("resources") or {}
    req = res.get("requests")
    if req is None:
        # Upstream defaulting copies limits into missing requests.
        req = res.get("limits")
    else:
        limits = res.get("limits") or {}
        if any(k not in req for k in limits):
            req = {**limits, **req}
    return resource_list_ints(req)


def pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """Effective resource requests of a pod spec, as upstream's resourcehelper.PodRequests.

    Sum over containers; init containers run one at a time, so each (plus the restartable
    "sidecar" init containers started before it) only raises the maximum; sidecars also add to the
    steady state; pod overhead is added on top.
    """
    total: dict[str, int] = {}
    for c in spec.get("containers") or ():
        total = resource_list_add(total, _container_requests(c))
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in spec.get("initContainers") or ():
        req = _container_requests(c)
        if is_restartable_init_container(c):
            sidecars = resource_list_add(sidecars, req)
            init_max = resource_list_max(init_max, sidecars)
        else:
            init_max = resource_list_max(init_max, resource_list_add(sidecars, req))
    total = resource_list_max(resource_list_add(total, sidecars), init_max)
    overhead = spec.get("overhead")
    if overhead:
        total = resource_list_add(total, resource_list_ints(overhead))
    return total


def sum_resource_lists(lists: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for rl in lists:
        for name, v in rl.items():
            out[name] = out.get(name, 0) + v
    return out
