"""resource.Quantity: parsing, rounding, canonical form (tables from upstream quantity_test.go)."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal

import pytest

from apimachinery.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    ERR_FORMAT_WRONG,
    ERR_SUFFIX,
    Quantity,
    QuantityError,
    format_quantity,
    is_quantity,
    milli_value,
    new_milli_quantity,
    new_quantity,
    parse_quantity,
    pod_requests,
    resource_int,
    resource_list_add,
    resource_list_fits,
    resource_list_ints,
    resource_list_max,
    resource_list_sub,
    scaled_value,
    value,
)

D = Decimal
MAX_INT64 = (1 << 63) - 1


@pytest.mark.parametrize(
    ("text", "want", "fmt"),
    [
        ("0", D(0), DECIMAL_SI),
        ("0n", D(0), DECIMAL_SI),
        ("0Ki", D(0), BINARY_SI),
        ("0M", D(0), DECIMAL_SI),
        ("1", D(1), DECIMAL_SI),
        ("1Ki", D(1024), BINARY_SI),
        ("7Mi", D(7 * 1024**2), BINARY_SI),
        ("6Gi", D(6 * 1024**3), BINARY_SI),
        ("5Ti", D(5 * 1024**4), BINARY_SI),
        ("4Pi", D(4 * 1024**5), BINARY_SI),
        ("3Ei", D(3 * 1024**6), BINARY_SI),
        ("5n", D("5e-9"), DECIMAL_SI),
        ("4u", D("4e-6"), DECIMAL_SI),
        ("3m", D("3e-3"), DECIMAL_SI),
        ("50k", D("5e4"), DECIMAL_SI),
        ("7M", D("7e6"), DECIMAL_SI),
        ("6G", D("6e9"), DECIMAL_SI),
        ("40T", D("4e13"), DECIMAL_SI),
        ("2P", D("2e15"), DECIMAL_SI),
        ("1E", D("1e18"), DECIMAL_SI),
        ("1E-3", D("1e-3"), DECIMAL_EXPONENT),
        ("1e3", D("1e3"), DECIMAL_EXPONENT),
        ("1E18", D("1e18"), DECIMAL_EXPONENT),
        ("100.035k", D(100035), DECIMAL_SI),
        ("0.001", D("0.001"), DECIMAL_SI),
        ("0.0005k", D("0.5"), DECIMAL_SI),
        ("0.50000", D("0.5"), DECIMAL_SI),
        ("0.5e-2", D("0.005"), DECIMAL_EXPONENT),
        ("1.3E+6", D("1.3e6"), DECIMAL_EXPONENT),
        ("7.123456M", D(7123456), DECIMAL_SI),
        ("1.01E", D("1.01e18"), DECIMAL_SI),
        # Things that saturate/round
        ("3.001n", D("4e-9"), DECIMAL_SI),
        ("1.1E-9", D("2e-9"), DECIMAL_EXPONENT),
        ("0.0000000001", D("1e-9"), DECIMAL_SI),
        ("0.00000012345", D("124e-9"), DECIMAL_SI),
        ("9Ei", D(MAX_INT64), BINARY_SI),
        ("9223372036854775807Ki", D(MAX_INT64), BINARY_SI),
        ("12E", D("12e18"), DECIMAL_SI),
        # Fractional binary
        ("100.035Ki", D("102435.84"), BINARY_SI),
        ("0.5Mi", D(512 * 1024), BINARY_SI),
        ("0.05Gi", D("53687091.2"), BINARY_SI),
        # Things written by trolls
        ("0.000000000001Ki", D("2e-9"), DECIMAL_SI),
        (".001", D("0.001"), DECIMAL_SI),
        (".0001k", D("0.1"), DECIMAL_SI),
        ("1.", D(1), DECIMAL_SI),
        ("1.G", D("1e9"), DECIMAL_SI),
    ],
)
def test_parse_values_and_formats(text, want, fmt):
    q = parse_quantity(text)
    assert q == want and q.format == fmt
    neg = parse_quantity("-" + text)
    assert neg == -want and neg.format == fmt
    plus = parse_quantity("+" + text)
    assert plus == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ERR_FORMAT_WRONG),
        ("1.1.M", ERR_FORMAT_WRONG),
        ("1+1.0M", ERR_FORMAT_WRONG),
        ("0.1mi", ERR_SUFFIX),
        ("0.1am", ERR_FORMAT_WRONG),
        ("aoeu", ERR_FORMAT_WRONG),
        (".5i", ERR_SUFFIX),
        ("1i", ERR_SUFFIX),
        ("-3.01i", ERR_SUFFIX),
        ("-3.01e-", ERR_SUFFIX),
        (" 1", ERR_FORMAT_WRONG),
        ("1 ", ERR_FORMAT_WRONG),
        ("1K", ERR_SUFFIX),
    ],
)
def test_invalid(text, message):
    with pytest.raises(QuantityError) as ei:
        parse_quantity(text)
    assert str(ei.value) == message
    assert not is_quantity(text)


def test_error_message_is_upstreams():
    assert ERR_FORMAT_WRONG == (
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


@pytest.mark.parametrize(
    ("v", "fmt", "want", "alternate"),
    [
        (1024**3, BINARY_SI, "1Gi", "1024Mi"),
        (300 * 1024**2, BINARY_SI, "300Mi", "307200Ki"),
        (6 * 1024, BINARY_SI, "6Ki", ""),
        (1001 * 1024**3, BINARY_SI, "1001Gi", "1025024Mi"),
        (1024**4, BINARY_SI, "1Ti", "1024Gi"),
        (5, BINARY_SI, "5", "5000m"),
        (D("0.5"), BINARY_SI, "500m", "0.5"),
        (D("1e9"), DECIMAL_SI, "1G", "1000M"),
        (D("1000e6"), DECIMAL_SI, "1G", "0.001T"),
        (D("1e-3"), DECIMAL_SI, "1m", "1000u"),
        (D("1.08"), DECIMAL_SI, "1080m", "1.08"),
        (D("300e6"), DECIMAL_SI, "300M", ""),
        (D("1234567e6"), DECIMAL_SI, "1234567M", ""),
        (D("1234.567"), BINARY_SI, "1234567m", ""),
        (1025, BINARY_SI, "1025", ""),
        (0, DECIMAL_SI, "0", ""),
        (0, BINARY_SI, "0", ""),
        (D("1e9"), DECIMAL_EXPONENT, "1e9", ".001e12"),
        (D("1e-3"), DECIMAL_EXPONENT, "1e-3", "0.001e0"),
        (D("1e-9"), DECIMAL_EXPONENT, "1e-9", "1000e-12"),
        (D("80e-3"), DECIMAL_EXPONENT, "80e-3", ""),
        (D("3e3"), DECIMAL_EXPONENT, "3e3", ""),
        (0, DECIMAL_EXPONENT, "0", "00"),
        (D("1e-9"), DECIMAL_SI, "1n", ""),
        (D("10800e-10"), DECIMAL_SI, "1080n", ""),
        (D("1080e-6"), DECIMAL_SI, "1080u", ""),
    ],
)
def test_canonical_string(v, fmt, want, alternate):
    q = new_quantity(D(v), fmt)
    assert format_quantity(q) == want
    assert format_quantity(want) == want  # canonical input stays as it is
    if alternate:
        assert format_quantity(alternate) == want
    if v != 0:
        assert format_quantity(new_quantity(-D(v), fmt)) == "-" + want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1Ki", "1Ki"), ("1Mi", "1Mi"), ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1000M", "1G"),
        (".001Ki", "1024m"), (".000001Ki", "1024u"), (".000000001Ki", "1024n"), (".000000000001Ki", "2n"),
        ("1536Mi", "1536Mi"), ("1.5Gi", "1536Mi"), ("0.1", "100m"), ("1.5", "1500m"), ("0.5Gi", "512Mi"),
        ("1000", "1k"), ("100", "100"), ("1.3E+6", "1300e3"), ("9Ei", "9223372036854775807"),
        ("100.035Ki", "102435840m"),
        # Upstream keeps an already-canonical input verbatim, sign and leading zeros included.
        ("+1", "+1"), ("01", "01"), ("+1Ki", "+1Ki"), ("8Ki", "8Ki"),
    ],
)
def test_parse_emit(text, want):
    assert format_quantity(text) == want
    assert str(parse_quantity(text)) == want


def test_format_override_and_plain_decimals():
    assert format_quantity(D(1536 * 1024**2)) == "1610612736"
    assert format_quantity(D(1536 * 1024**2), BINARY_SI) == "1536Mi"
    assert format_quantity(parse_quantity("1Gi"), DECIMAL_SI) == "1073741824"
    assert format_quantity(parse_quantity("1Gi") + parse_quantity("512Mi"), BINARY_SI) == "1536Mi"
    assert format_quantity(new_milli_quantity(250)) == "250m"
    assert format_quantity(new_milli_quantity(2000)) == "2"
    assert format_quantity(new_milli_quantity(-1500)) == "-1500m"
    assert format_quantity(D("1e21")) == "1000E"  # beyond the largest suffix, stays exact


def test_json_numbers():
    assert parse_quantity(2) == 2 and format_quantity(2) == "2"
    assert format_quantity(0.5) == "500m"
    assert format_quantity(0.1) == "100m"
    assert parse_quantity(1e-05) == D("1e-5")
    for bad in (True, None, float("nan"), float("inf"), [1]):
        with pytest.raises(QuantityError):
            parse_quantity(bad)


@pytest.mark.parametrize(
    ("text", "milli", "val"),
    [
        ("100m", 100, 1),
        ("0.5", 500, 1),
        ("1", 1000, 1),
        ("1.5", 1500, 2),
        ("128Mi", 134217728000, 134217728),
        ("1e3", 1000000, 1000),
        ("1n", 1, 1),
        ("0.0001", 1, 1),
        ("-1.5", -1500, -2),
        ("-0.1m", -1, -1),
        ("0", 0, 0),
        ("100.035Ki", 102435840, 102436),
        ("12E", MAX_INT64, MAX_INT64),
        ("1E", MAX_INT64, 10**18),
    ],
)
def test_milli_value_and_value_round_away_from_zero(text, milli, val):
    assert milli_value(text) == milli
    assert value(text) == val
    assert milli_value(parse_quantity(text)) == milli


def test_scaled_value():
    assert scaled_value("1G", 6) == 1000
    assert scaled_value("1500k", 6) == 2
    assert scaled_value("1n", -9) == 1


def test_quantity_is_a_decimal_and_immutable_enough():
    q = parse_quantity("1Gi")
    assert isinstance(q, Decimal) and isinstance(q, Quantity)
    assert q > parse_quantity("1000Mi")
    assert parse_quantity("1024Mi") == q
    assert copy.deepcopy(q) is q
    p = pickle.loads(pickle.dumps(q))
    assert p == q and p.format == BINARY_SI and str(p) == "1Gi"
    assert repr(q) == "Quantity('1Gi')"
    assert parse_quantity("1Gi") is parse_quantity("1Gi")  # memoised


def test_huge_exponents_stay_cheap():
    assert parse_quantity("1e-1000000000") == D("1e-9")
    assert format_quantity("1e1000000") == "10e999999"
    assert value("1e1000000") == MAX_INT64


# --- resource lists --------------------------------------------------------------------------


def test_resource_list_ints():
    assert resource_list_ints({"cpu": "500m", "memory": "1Gi", "pods": "110", "nvidia.com/gpu": 2}) == {
        "cpu": 500, "memory": 1 << 30, "pods": 110, "nvidia.com/gpu": 2,
    }
    assert resource_list_ints(None) == {}
    assert resource_int("cpu", 2) == 2000
    assert resource_int("ephemeral-storage", "1k") == 1000


def test_resource_list_arithmetic_and_fit():
    a = {"cpu": 500, "memory": 100}
    b = {"cpu": 250, "pods": 1}
    assert resource_list_add(a, b) == {"cpu": 750, "memory": 100, "pods": 1}
    assert resource_list_sub(a, b) == {"cpu": 250, "memory": 100, "pods": -1}
    assert resource_list_max(a, {"cpu": 100, "memory": 200}) == {"cpu": 500, "memory": 200}
    assert a == {"cpu": 500, "memory": 100}  # inputs untouched
    alloc = {"cpu": 1000, "memory": 1000, "pods": 2}
    assert resource_list_fits({"cpu": 1000, "memory": 1000}, alloc) == []
    assert resource_list_fits({"cpu": 1001, "memory": 1001}, alloc) == ["cpu", "memory"]
    assert resource_list_fits({"cpu": 500}, alloc, used={"cpu": 600}) == ["cpu"]
    assert resource_list_fits({"example.com/dongle": 1}, alloc) == ["example.com/dongle"]
    assert resource_list_fits({"example.com/dongle": 0}, alloc) == []


def test_pod_requests_like_upstream():
    spec = {
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "200m"}}},
            {"name": "c"},
        ],
        "initContainers": [
            {"name": "init-big", "resources": {"requests": {"cpu": "1", "memory": "16Mi"}}},
            {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
            {"name": "init-after-sidecar", "resources": {"requests": {"cpu": "980m"}}},
        ],
        "overhead": {"cpu": "10m"},
    }
    # containers 300m + sidecar 50m = 350m; init max(1000m, 50m+980m=1030m) = 1030m; + 10m overhead.
    assert pod_requests(spec) == {"cpu": 1040, "memory": 64 * 1024 * 1024 + 0}
    assert pod_requests({"containers": [{"name": "x"}]}) == {}
