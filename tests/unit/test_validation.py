"""Field validators: upstream messages, cause reasons and field paths."""

from __future__ import annotations

import pytest

from apimachinery.errors import invalid
from apimachinery.validation import (
    FIELD_VALUE_DUPLICATE,
    FIELD_VALUE_FORBIDDEN,
    FIELD_VALUE_INVALID,
    FIELD_VALUE_NOT_SUPPORTED,
    FIELD_VALUE_REQUIRED,
    FIELD_VALUE_TOO_LONG,
    duplicate_cause,
    go_quote,
    is_config_map_key,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_qualified_name,
    is_valid_cidr,
    is_valid_ip,
    is_valid_label_value,
    is_valid_percent,
    is_valid_port_name,
    name_is_dns_label,
    name_is_dns_subdomain,
    render_value,
    validate_annotations,
    validate_cidr,
    validate_enum,
    validate_finalizers,
    validate_immutable,
    validate_ip_address,
    validate_label_selector,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
    validate_owner_references,
    validate_path_segment_name,
    validate_port,
    validate_port_num_or_name,
    validate_quantity,
    validate_required,
)

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


# --- string checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["a", "ab", "a-b", "0", "a.b", "a-1.b-2", "1.2.3.4", "a" * 253,
                                  ".".join(["a" * 63] * 4)[:253].rstrip(".")])
def test_dns1123_subdomain_good(good):
    assert is_dns1123_subdomain(good) == []


@pytest.mark.parametrize("bad", ["", "A", "-a", "a-", "a..b", "a_b", "a.", ".a", "a b", "é", "a\n"])
def test_dns1123_subdomain_bad(bad):
    assert is_dns1123_subdomain(bad) == [SUBDOMAIN_MSG]


def test_dns1123_subdomain_too_long():
    assert is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]


def test_dns1123_label():
    assert is_dns1123_label("my-name") == []
    assert is_dns1123_label("My") == [LABEL_MSG]
    assert is_dns1123_label("a.b") == ["must not contain dots"]
    assert is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert is_dns1035_label("1abc") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
        "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]


@pytest.mark.parametrize("good", ["simple", "now-with-dashes", "1-starts-with-num", "1234", "simple/simple",
                                  "now-with-dashes/simple", "now-with-dashes/now-with-dashes",
                                  "now.with.dots/simple", "now-with.dashes-and.dots/simple",
                                  "1-num.2-num/3-num", "1234/5678", "1.2.3.4/5678", "Uppercase_Is_OK_123",
                                  "example.com/Uppercase_Is_OK_123", "requests.storage-foo",
                                  "a" * 63, "a" * 253 + "/" + "b" * 63])
def test_qualified_name_good(good):
    assert is_qualified_name(good) == []


@pytest.mark.parametrize("bad", ["nospecialchars%^=@", "cantendwithadash-", "-cantstartwithadash-",
                                 "only/one/slash", "Example.com/abc", "example_com/abc", "example.com/",
                                 "/simple", "a" * 64, "a" * 254 + "/abc"])
def test_qualified_name_bad(bad):
    assert is_qualified_name(bad)


def test_qualified_name_messages():
    assert is_qualified_name("a/b/c") == [
        "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
        "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
        "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
        "(e.g. 'example.com/MyName')"
    ]
    assert is_qualified_name("/a") == ["prefix part must be non-empty"]
    assert is_qualified_name("a/") == [
        "name part must be non-empty",
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ]
    assert is_qualified_name("a" * 64) == ["name part must be no more than 63 bytes"]


def test_label_values():
    for good in ["", "simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "a" * 63,
                 "Upper_Case.ok"]:
        assert is_valid_label_value(good) == [], good
    for bad in ["nospecialchars%^=@", "Tama-nui-te-rā.is.Māori.sun", "\\backslashes\\are\\bad",
                "-starts-with-dash", "ends-with-dash-", ".starts.with.dot", "ends.with.dot."]:
        assert is_valid_label_value(bad), bad
    assert is_valid_label_value("a" * 64) == ["must be no more than 63 bytes"]


def test_misc_string_checks():
    assert is_valid_port_name("http") == []
    assert is_valid_port_name("1234") == ["must contain at least one letter (a-z)"]
    assert is_valid_port_name("-a--b-") == ["must not contain consecutive hyphens",
                                            "must not begin or end with a hyphen"]
    assert is_valid_port_name("a" * 16) == ["must be no more than 15 characters"]
    assert is_env_var_name("MY_ENV.NAME") == []
    assert is_env_var_name("1A")[0].startswith("a valid environment variable name")
    assert is_env_var_name("..") == ["must not be '..'"]
    assert is_config_map_key("key.name") == []
    assert is_config_map_key("..x") == ["must not start with '..'"]
    assert is_valid_percent("50%") == [] and is_valid_percent("50")


def test_ip_and_cidr():
    assert is_valid_ip("10.9.8.7") == [] and is_valid_ip("2001:db8::ffff") == []
    assert is_valid_ip("010.9.8.7") == ["must not have leading 0s"]
    assert is_valid_ip("::ffff:1.2.3.4") == ["must not be an IPv4-mapped IPv6 address"]
    assert is_valid_ip("1.2.3") == ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    assert is_valid_ip("fe80::1%eth0")
    assert is_valid_cidr("10.244.0.0/16") == [] and is_valid_cidr("2001:db8::/64") == []
    assert is_valid_cidr("10.244.0.1/16") == ["must not have bits set beyond the prefix length"]
    assert is_valid_cidr("10.244.0.0/016") == ["must not have leading 0s in IP or prefix length"]
    assert is_valid_cidr("10.244.0.0") == ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    assert is_valid_cidr("10.244.0.0/33") == ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    assert validate_ip_address("x", "spec.clusterIP")[0]["field"] == "spec.clusterIP"
    assert validate_cidr("10.0.0.0/8", "spec.podCIDR") == []


def test_name_functions_allow_generate_name_prefixes():
    assert name_is_dns_subdomain("web-", prefix=True) == []
    assert name_is_dns_subdomain("web-", prefix=False) == [SUBDOMAIN_MSG]
    assert name_is_dns_label("ns-", prefix=True) == []
    assert validate_path_segment_name("..") == ["may not be '..'"]
    assert validate_path_segment_name("a/b%c") == ["may not contain '/'", "may not contain '%'"]


# --- causes ----------------------------------------------------------------------------------


def test_go_quote_and_values():
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert go_quote("rā") == '"rā"'
    assert go_quote("\x01") == '"\\x01"'
    assert render_value(True) == "true" and render_value(5) == "5"
    assert render_value(["a", 1]) == '["a",1]'


def test_causes_render_like_upstream_status():
    causes = validate_object_meta({"name": "Bad_Name", "namespace": "default"}, namespaced=True)
    assert causes == [{"reason": FIELD_VALUE_INVALID, "field": "metadata.name",
                       "message": f'Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'}]
    err = invalid("Pod", "Bad_Name", causes)
    assert err.code == 422
    assert err.message == f'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'


def test_generic_causes():
    assert validate_required("", "spec.x") == [{"reason": FIELD_VALUE_REQUIRED, "field": "spec.x",
                                                "message": "Required value"}]
    assert validate_required(0, "spec.x") == []
    assert validate_enum("Sometimes", ["Always", "OnFailure", "Never"], "spec.restartPolicy") == [{
        "reason": FIELD_VALUE_NOT_SUPPORTED, "field": "spec.restartPolicy",
        "message": 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'}]
    assert validate_enum(None, ["A"], "f", required=False) == []
    assert validate_enum("", ["A"], "f")[0]["reason"] == FIELD_VALUE_REQUIRED
    assert validate_port(0, "spec.ports[0].port") == [{
        "reason": FIELD_VALUE_INVALID, "field": "spec.ports[0].port",
        "message": "Invalid value: 0: must be between 1 and 65535, inclusive"}]
    assert validate_port(80, "p") == [] and validate_port("80", "p")[0]["reason"] == "FieldValueTypeInvalid"
    assert validate_port_num_or_name("http", "p") == [] and validate_port_num_or_name(70000, "p")
    assert duplicate_cause("spec.ports[1].name", "http") == {
        "reason": FIELD_VALUE_DUPLICATE, "field": "spec.ports[1].name", "message": 'Duplicate value: "http"'}
    assert validate_immutable("b", "a", "spec.selector") == [{
        "reason": FIELD_VALUE_INVALID, "field": "spec.selector", "message": 'Invalid value: "b": field is immutable'}]
    assert validate_immutable({"a": 1}, {"a": 1}, "x") == []


def test_quantity_validation():
    assert validate_quantity("100m", "spec.containers[0].resources.requests[cpu]") == []
    assert validate_quantity(2, "r") == []
    neg = validate_quantity("-1", "r")
    assert neg[0]["message"] == 'Invalid value: "-1": must be greater than or equal to 0'
    bad = validate_quantity("1x", "r")
    assert bad[0]["message"].startswith('Invalid value: "1x": quantities must match the regular expression')


# --- ObjectMeta ------------------------------------------------------------------------------


def test_object_meta_valid():
    meta = {"name": "web-1", "namespace": "default", "labels": {"app": "web", "example.com/tier": ""},
            "annotations": {"Example.com/Note": "x"}, "finalizers": ["example.com/f"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1",
                                 "controller": True}], "generation": 1}
    assert validate_object_meta(meta, namespaced=True) == []


def test_object_meta_name_and_namespace_rules():
    assert validate_object_meta({"namespace": "default"}, True) == [{
        "reason": FIELD_VALUE_REQUIRED, "field": "metadata.name",
        "message": "Required value: name or generateName is required"}]
    assert validate_object_meta({"name": "a"}, True) == [{
        "reason": FIELD_VALUE_REQUIRED, "field": "metadata.namespace", "message": "Required value"}]
    assert validate_object_meta({"name": "a", "namespace": "x"}, False) == [{
        "reason": FIELD_VALUE_FORBIDDEN, "field": "metadata.namespace",
        "message": "Forbidden: not allowed on this type"}]
    bad_ns = validate_object_meta({"name": "a", "namespace": "Bad.NS"}, True)
    assert bad_ns[0]["field"] == "metadata.namespace"
    gen = validate_object_meta({"name": "a", "generateName": "Web-", "namespace": "d"}, True)
    assert [c["field"] for c in gen] == ["metadata.generateName"]
    labelled = validate_object_meta({"name": "my.svc", "namespace": "d"}, True, name_fn=name_is_dns_label)
    assert labelled[0]["message"] == 'Invalid value: "my.svc": must not contain dots'
    assert validate_object_meta({"name": "a", "namespace": "d", "generation": -1}, True)[0]["message"] == \
        "Invalid value: -1: must be greater than or equal to 0"


def test_labels_and_annotations():
    causes = validate_labels({"bad key": "ok", "k": "bad value"})
    assert [c["field"] for c in causes] == ["metadata.labels", "metadata.labels"]
    assert causes[0]["message"].startswith('Invalid value: "bad key": name part must consist of')
    assert causes[1]["message"].startswith('Invalid value: "bad value": a valid label must be an empty string')
    assert validate_annotations({"a": "x" * (256 * 1024)}) == [{
        "reason": FIELD_VALUE_TOO_LONG, "field": "metadata.annotations",
        "message": "Too long: may not be more than 262144 bytes"}]
    assert validate_annotations({"a": "x" * (256 * 1024 - 1)}) == []
    assert validate_annotations({"UPPER.io/Case": "x"}) == []  # keys are checked lower-cased
    assert validate_annotations({"bad_prefix/x": "x"})[0]["message"].startswith(
        'Invalid value: "bad_prefix/x": prefix part a lowercase RFC 1123 subdomain')
    assert validate_labels(["not", "a", "map"])[0]["reason"] == "FieldValueTypeInvalid"


def test_owner_references_and_finalizers():
    refs = [{"apiVersion": "a/b/c", "kind": "", "name": "x", "uid": "1", "controller": True},
            {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "2", "controller": True}]
    causes = validate_owner_references(refs)
    assert [(c["field"], c["reason"]) for c in causes] == [
        ("metadata.ownerReferences[0].apiVersion", FIELD_VALUE_INVALID),
        ("metadata.ownerReferences[0].kind", FIELD_VALUE_REQUIRED),
        ("metadata.ownerReferences[1]", FIELD_VALUE_INVALID),
        ("metadata.ownerReferences", FIELD_VALUE_INVALID),
    ]
    assert causes[1]["message"] == "Required value: must not be empty"
    assert causes[2]["message"].endswith("/v1, Kind=Event is disallowed from being an owner")
    assert causes[3]["message"].endswith(
        'Only one reference can have Controller set to true. Found "true" in references for /x and Event/e')
    fin = validate_finalizers(["orphan", "foregroundDeletion", "bad finalizer"])
    assert [c["message"].split(":")[0] for c in fin] == ["Invalid value", "Invalid value"]
    assert fin[-1]["message"] == ('Invalid value: ["orphan","foregroundDeletion","bad finalizer"]: '
                                  "finalizer orphan and foregroundDeletion cannot be both set")


def test_object_meta_update():
    old = {"name": "a", "namespace": "d", "uid": "u", "resourceVersion": "5", "generation": 3,
           "creationTimestamp": "2024-01-01T00:00:00Z", "deletionTimestamp": "2024-01-02T00:00:00Z",
           "finalizers": ["x/a"]}
    new = {**old, "uid": "other", "generation": 2, "finalizers": ["x/a", "x/b"], "resourceVersion": ""}
    causes = validate_object_meta_update(new, old)
    assert [(c["field"], c["reason"]) for c in causes] == [
        ("metadata.finalizers", FIELD_VALUE_FORBIDDEN),
        ("metadata.resourceVersion", FIELD_VALUE_INVALID),
        ("metadata.generation", FIELD_VALUE_INVALID),
        ("metadata.uid", FIELD_VALUE_INVALID),
    ]
    assert causes[0]["message"] == ('Forbidden: no new finalizers can be added if the object is being deleted, '
                                    'found new finalizers []string{"x/b"}')
    assert causes[1]["message"] == 'Invalid value: "": must be specified for an update'
    assert causes[2]["message"] == "Invalid value: 2: must not be decremented"
    assert causes[3]["message"] == 'Invalid value: "other": field is immutable'
    assert validate_object_meta_update({**old, "labels": {"a": "b"}}, old) == []


# --- label selectors -------------------------------------------------------------------------


def test_label_selector_validation():
    assert validate_label_selector({"matchLabels": {"app": "web"},
                                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}) == []
    causes = validate_label_selector({"matchExpressions": [
        {"key": "a", "operator": "In"},
        {"key": "b", "operator": "Exists", "values": ["x"]},
        {"key": "bad key", "operator": "Gt", "values": ["bad value"]},
    ]})
    assert [(c["field"], c["reason"]) for c in causes] == [
        ("spec.selector.matchExpressions[0].values", FIELD_VALUE_REQUIRED),
        ("spec.selector.matchExpressions[1].values", FIELD_VALUE_FORBIDDEN),
        ("spec.selector.matchExpressions[2].operator", FIELD_VALUE_INVALID),
        ("spec.selector.matchExpressions[2].key", FIELD_VALUE_INVALID),
        ("spec.selector.matchExpressions[2].values[0]", FIELD_VALUE_INVALID),
    ]
    assert causes[0]["message"] == "Required value: must be specified when `operator` is 'In' or 'NotIn'"
    assert causes[2]["message"] == 'Invalid value: "Gt": not a valid selector operator'
    assert validate_label_selector(None) == []


def test_a_jobs_pod_template_is_immutable_but_for_scheduling_directives_while_suspended():
    import copy

    from apiserver.registry.batch import JobStrategy

    st = JobStrategy()

    def job(suspend: bool, started: bool) -> dict:
        obj = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "j", "namespace": "ns", "resourceVersion": "1"},
               "spec": {"suspend": suspend, "template": {
                   "metadata": {"labels": {"a": "b"}},
                   "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}
        st.default(obj)
        if started:
            obj["status"] = {"startTime": "2026-01-01T00:00:00Z"}
        return obj

    def template_causes(old: dict, change) -> list[str]:
        new = copy.deepcopy(old)
        change(new["spec"]["template"])
        return [c["field"] for c in st.validate_update(new, old, True) if c["field"] == "spec.template"]

    def image(t): t["spec"]["containers"][0]["image"] = "other"
    def placement(t):
        t["spec"]["nodeSelector"] = {"zone": "a"}
        t["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
        t["metadata"]["labels"] = {"a": "c"}

    assert template_causes(job(False, False), image) == ["spec.template"]
    assert template_causes(job(False, False), placement) == ["spec.template"]
    assert template_causes(job(True, False), placement) == []  # suspended, never started: where pods run may change
    assert template_causes(job(True, False), image) == ["spec.template"]  # ...but not what they run
    assert template_causes(job(True, True), placement) == ["spec.template"]  # once started, nothing changes


def test_container_restart_policies_and_sidecar_only_fields():
    from apiserver.registry.podspec import validate_pod_spec

    def messages(**spec):
        return {c["field"]: c["message"] for c in validate_pod_spec({"containers": [{"name": "a", "image": "x"}], **spec})}

    sidecar = {"name": "s", "image": "x", "restartPolicy": "Always", "lifecycle": {"preStop": {"exec": {"command": ["x"]}}},
               "readinessProbe": {"exec": {"command": ["true"]}}}
    assert messages(initContainers=[sidecar]) == {}
    assert messages(initContainers=[{"name": "i", "image": "x", "restartPolicy": "OnFailure"}]) == {
        "spec.initContainers[0].restartPolicy": 'Unsupported value: "OnFailure": supported values: "Always"'}
    assert messages(initContainers=[{"name": "i", "image": "x", "lifecycle": {}}]) == {
        "spec.initContainers[0].lifecycle": "Forbidden: may not be set for init containers without restartPolicy=Always"}
    assert messages(containers=[{"name": "a", "image": "x", "restartPolicy": "Always"}]) == {
        "spec.containers[0].restartPolicy": "Forbidden: may not be set for non-init containers"}


def test_zero_values_of_defaulted_fields_are_defaulted_as_upstream():
    """Go's defaulters see "" and 0 of a non-pointer field as unset (a Helm value left empty)."""
    from apiserver.registry.base import default_field
    from apiserver.registry.podspec import default_pod_spec, validate_pod_spec

    spec = {"restartPolicy": "", "dnsPolicy": None, "schedulerName": "",
            "containers": [{"name": "c", "image": "busybox:1.36", "imagePullPolicy": "", "terminationMessagePolicy": "",
                            "ports": [{"containerPort": 80, "protocol": ""}],
                            "readinessProbe": {"exec": {"command": ["true"]}, "timeoutSeconds": 0, "periodSeconds": 0}}]}
    default_pod_spec(spec)
    c = spec["containers"][0]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["schedulerName"]) == ("Always", "ClusterFirst", "default-scheduler")
    assert (c["imagePullPolicy"], c["terminationMessagePolicy"], c["ports"][0]["protocol"]) == ("IfNotPresent", "File", "TCP")
    assert (c["readinessProbe"]["timeoutSeconds"], c["readinessProbe"]["periodSeconds"]) == (1, 10)
    assert validate_pod_spec(spec) == []
    # set values, and False for an int default, stay as they are
    d = {"a": "x", "b": 5, "c": False}
    for key, value in (("a", "y"), ("b", 1), ("c", 1)):
        default_field(d, key, value)
    assert d == {"a": "x", "b": 5, "c": False}


def test_service_traffic_distribution_values():
    from apiserver.registry.core import ServiceStrategy

    def causes(value):
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"},
               "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}, "trafficDistribution": value}}
        st = ServiceStrategy()
        st.default(svc)
        return [c["message"] for c in st.validate(svc, True) if c["field"] == "spec.trafficDistribution"]

    assert causes("PreferClose") == []
    assert causes("Nearby") == ['Unsupported value: "Nearby": supported values: "PreferClose"']


def test_a_service_port_without_a_target_port_targets_its_port():
    from apiserver.registry.core import ServiceStrategy

    for target in (None, 0, "", 8080, "http"):
        port = {"port": 80} if target is None else {"port": 80, "targetPort": target}
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"},
               "spec": {"ports": [port], "selector": {"a": "b"}}}
        ServiceStrategy().default(svc)
        assert svc["spec"]["ports"][0]["targetPort"] == (80 if target in (None, 0, "") else target)
