"""CustomResourceDefinition strategy: defaults, status bookkeeping and upstream's validation
(k8s.io/apiextensions-apiserver v1.31), with upstream's field paths and messages."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from typing import Any

import pytest

from apiserver.registry import apiextensions as ext
from apiserver.registry.apiextensions import CustomResourceDefinitionStrategy

S = CustomResourceDefinitionStrategy()
DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
           "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
           "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


def schema(**props: Any) -> dict[str, Any]:
    return {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": props or {"size": {"type": "string"}}}}}}


def version(name: str = "v1", served: bool = True, storage: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "served": served, "storage": storage, "schema": schema(), **extra}


def crd(*versions: dict[str, Any], group: str = "example.com", plural: str = "widgets", kind: str = "Widget",
        **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": plural, "kind": kind},
                 "versions": list(versions) or [version()], **spec},
    }


def created(obj: dict[str, Any]) -> dict[str, Any]:
    """What the create path does before validating: prepare, then default."""
    S.prepare_for_create(obj)
    S.default(obj)
    return obj


def create_causes(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in S.validate(created(obj), False)]


def stored(obj: dict[str, Any], rv: str = "5", established: bool = False) -> dict[str, Any]:
    out = created(obj)
    out["metadata"].update(uid="u-1", resourceVersion=rv, generation=1, creationTimestamp="2024-01-01T00:00:00Z")
    if established:
        ext.set_condition(out, ext.ESTABLISHED, "True", "InitialNamesAccepted", "the initial names have been accepted",
                          "2024-01-01T00:00:01Z")
    return out


def update_causes(new: dict[str, Any], old: dict[str, Any]) -> list[tuple[str, str]]:
    S.prepare_for_update(new, old)
    S.default(new)
    return [(c["field"], c["message"]) for c in S.validate_update(new, old, False)]


def edited(old: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(old)
    new.pop("status")
    return new


# -- create: status and defaults --------------------------------------------------------------

def test_create_resets_status_to_upstreams_json_and_records_the_storage_version() -> None:
    obj = crd(version("v1beta1", storage=False), version("v1"))
    obj["status"] = {"storedVersions": ["v0"], "conditions": [{"type": "Established", "status": "True"}],
                     "acceptedNames": {"plural": "x", "kind": "X"}}
    created(obj)
    assert obj["status"] == {"conditions": None, "acceptedNames": {"plural": "", "kind": ""},
                             "storedVersions": ["v1"]}
    assert list(obj["status"]) == ["conditions", "acceptedNames", "storedVersions"]
    assert S.validate(obj, False) == []


def test_defaults_fill_names_and_conversion_as_v1_does() -> None:
    obj = created(crd())
    assert obj["spec"]["names"] == {"plural": "widgets", "kind": "Widget", "singular": "widget",
                                    "listKind": "WidgetList"}
    assert obj["spec"]["conversion"] == {"strategy": "None"}


def test_defaults_keep_given_names_and_skip_list_kind_without_kind() -> None:
    obj = created(crd())
    obj["spec"]["names"] = {"plural": "widgets", "singular": "wid", "listKind": "Widgets", "kind": "Widget"}
    S.default(obj)
    assert obj["spec"]["names"]["singular"] == "wid"
    assert obj["spec"]["names"]["listKind"] == "Widgets"
    no_kind = created(crd(kind=""))
    assert "listKind" not in no_kind["spec"]["names"]
    assert "singular" not in no_kind["spec"]["names"]


def test_webhook_service_port_defaults_to_443_and_keeps_a_given_port() -> None:
    def conv(port: int | None) -> dict[str, Any]:
        svc: dict[str, Any] = {"namespace": "default", "name": "conv"}
        if port is not None:
            svc["port"] = port
        return {"strategy": "Webhook", "webhook": {"clientConfig": {"service": svc},
                                                    "conversionReviewVersions": ["v1"]}}

    assert created(crd(conversion=conv(None)))["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 443
    assert created(crd(conversion=conv(8443)))["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 8443


def test_no_storage_version_leaves_stored_versions_null_and_fails() -> None:
    obj = created(crd(version(storage=False)))
    assert obj["status"]["storedVersions"] is None
    causes = [(c["field"], c["message"]) for c in S.validate(obj, False)]
    assert causes[0][0] == "spec.versions"
    assert causes[0][1].endswith(": must have exactly one version marked as storage version")
    assert causes[0][1].startswith('Invalid value: []apiextensions.CustomResourceDefinitionVersion{'
                                   'apiextensions.CustomResourceDefinitionVersion{Name:"v1", Served:true, '
                                   'Storage:false, Deprecated:false, DeprecationWarning:(*string)(nil), '
                                   'Schema:(*apiextensions.CustomResourceValidation)(nil), ')
    assert causes[1] == ("status.storedVersions",
                         "Invalid value: []string(nil): must have at least one stored version")


# -- create: metadata, group, scope, names ----------------------------------------------------

def test_name_must_be_plural_dot_group() -> None:
    obj = crd()
    obj["metadata"]["name"] = "gadgets.example.com"
    assert create_causes(obj) == [
        ("metadata.name", 'Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group')]


def test_generate_name_gets_the_plural_group_check_too() -> None:
    obj = crd()
    obj["metadata"]["generateName"] = "widgets-"
    assert ("metadata.generateName", 'Invalid value: "widgets-": must be spec.names.plural+"."+spec.group') \
        in create_causes(obj)


@pytest.mark.parametrize(("group", "message"), [
    ("", "Required value"),
    ("example", 'Invalid value: "example": should be a domain with at least one dot'),
    ("Example.com", 'Invalid value: "Example.com": a lowercase RFC 1123 subdomain must consist of lower case '
                    "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
                    "(e.g. 'example.com', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
])
def test_group_rules(group: str, message: str) -> None:
    causes = create_causes(crd(group=group))
    assert ("spec.group", message) in causes


@pytest.mark.parametrize(("scope", "message"), [
    ("", "Required value"),
    ("Global", 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"'),
])
def test_scope_must_be_cluster_or_namespaced(scope: str, message: str) -> None:
    obj = crd()
    obj["spec"]["scope"] = scope
    assert create_causes(obj) == [("spec.scope", message)]


def test_names_are_dns1035_labels_and_kind_differs_from_list_kind() -> None:
    obj = crd()
    obj["spec"]["names"].update(plural="widgets", kind="Wid_get", listKind="Wid_get", shortNames=["ok", "Bad"],
                                categories=["all", "no_no"])
    causes = create_causes(obj)
    assert causes == [
        ("spec.names.singular", f'Invalid value: "wid_get": {DNS1035}'),
        ("spec.names.kind", f'Invalid value: "Wid_get": may have mixed case, but should otherwise match: {DNS1035}'),
        ("spec.names.listKind",
         f'Invalid value: "Wid_get": may have mixed case, but should otherwise match: {DNS1035}'),
        ("spec.names.shortNames[1]", f'Invalid value: "Bad": {DNS1035}'),
        ("spec.names.listKind", 'Invalid value: "Wid_get": kind and listKind may not be the same'),
        ("spec.names.categories[1]", f'Invalid value: "no_no": {DNS1035}'),
    ]


def test_missing_names_are_required() -> None:
    obj = crd(plural="", kind="")
    obj["metadata"]["name"] = "widgets.example.com"
    causes = create_causes(obj)
    for f in ("plural", "singular", "kind", "listKind"):
        assert (f"spec.names.{f}", "Required value") in causes


# -- create: versions -------------------------------------------------------------------------

def test_versions_need_exactly_one_storage_version() -> None:
    causes = create_causes(crd(version("v1"), version("v2")))
    msgs = [m for f, m in causes if f == "spec.versions"]
    assert len(msgs) == 1
    assert msgs[0].endswith("must have exactly one version marked as storage version")


def test_version_names_unique_and_dns1035_and_spec_version_checked_again() -> None:
    causes = create_causes(crd(version("V1"), version("V1", storage=False)))
    assert causes[0] == ("spec.versions[0].name", f'Invalid value: "V1": {DNS1035}')
    assert causes[1] == ("spec.versions[1].name", f'Invalid value: "V1": {DNS1035}')
    assert causes[2][0] == "spec.versions" and causes[2][1].endswith(": must contain unique version names")
    assert causes[3] == ("spec.version", f'Invalid value: "V1": {DNS1035}')


def test_every_version_needs_a_schema_on_create() -> None:
    v1, v2 = version("v1"), version("v2", storage=False)
    del v1["schema"], v2["schema"]
    assert create_causes(crd(v1, v2)) == [
        ("spec.versions[0].schema.openAPIV3Schema", "Required value: schemas are required"),
        ("spec.versions[1].schema.openAPIV3Schema", "Required value: schemas are required"),
    ]


def test_no_versions_at_all() -> None:
    obj = crd()
    obj["spec"]["versions"] = []
    assert create_causes(obj) == [
        ("spec.versions", "Invalid value: []apiextensions.CustomResourceDefinitionVersion{}: "
                          "must have exactly one version marked as storage version"),
        ("status.storedVersions", "Invalid value: []string(nil): must have at least one stored version"),
    ]


def test_absent_versions_print_as_a_nil_slice() -> None:
    obj = crd()
    del obj["spec"]["versions"]
    assert create_causes(obj)[0] == (
        "spec.versions", "Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): "
                         "must have exactly one version marked as storage version")


def test_deprecation_warning_rules() -> None:
    assert create_causes(crd(version(deprecationWarning="old"))) == [
        ("spec.versions[0].deprecationWarning", 'Invalid value: "old": can only be set for deprecated versions')]
    assert create_causes(crd(version(deprecated=True, deprecationWarning=""))) == [
        ("spec.versions[0].deprecationWarning", 'Invalid value: "": must not be an empty string')]
    assert create_causes(crd(version(deprecated=True, deprecationWarning="é\tx"))) == [
        ("spec.versions[0].deprecationWarning", 'Invalid value: "é\\tx": must only contain printable UTF-8 '
                                                "characters; non-printable character found at index 2")]
    assert create_causes(crd(version(deprecated=True, deprecationWarning="x" * 257)))[0][1].endswith(
        "must be <= 256 characters long")
    assert create_causes(crd(version(deprecated=True, deprecationWarning="use v2"))) == []


# -- create: subresources, printer columns, selectable fields ---------------------------------

def test_identical_subresources_are_validated_at_the_top_level() -> None:
    scale = {"specReplicasPath": "spec.replicas", "statusReplicasPath": ".spec.replicas",
             "labelSelectorPath": ".metadata.labels"}
    sub = {"status": {}, "scale": scale}
    causes = create_causes(crd(version("v1", subresources=sub), version("v2", storage=False, subresources=sub)))
    assert causes == [
        ("spec.subresources.scale.specReplicasPath",
         'Invalid value: "spec.replicas": must be a simple json path starting with .'),
        ("spec.subresources.scale.statusReplicasPath",
         'Invalid value: ".spec.replicas": should be a json path under .status'),
        ("spec.subresources.scale.labelSelectorPath",
         'Invalid value: ".metadata.labels": should be a json path under either .spec or .status'),
    ]


def test_per_version_subresources_are_validated_per_version() -> None:
    bad = {"scale": {"specReplicasPath": ".status.replicas", "statusReplicasPath": ""}}
    causes = create_causes(crd(version("v1", subresources={"status": {}}), version("v2", storage=False,
                                                                                   subresources=bad)))
    assert causes == [
        ("spec.versions[1].subresources.scale.specReplicasPath",
         'Invalid value: ".status.replicas": should be a json path under .spec'),
        ("spec.versions[1].subresources.scale.statusReplicasPath", "Required value"),
    ]


def test_valid_scale_subresource() -> None:
    sub = {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                   "labelSelectorPath": ".status.selector"}}
    assert create_causes(crd(version(subresources=sub))) == []


def test_printer_columns_with_upstream_messages() -> None:
    cols = [{"name": "", "type": "", "jsonPath": ""},
            {"name": "Age", "type": "time", "format": "uuid", "jsonPath": "metadata.creationTimestamp"},
            {"name": "Size", "type": "string", "format": "byte", "jsonPath": ".spec.size", "priority": 1}]
    causes = create_causes(crd(version(additionalPrinterColumns=cols)))
    assert causes == [
        ("spec.additionalPrinterColumns[0].name", "Required value"),
        ("spec.additionalPrinterColumns[0].type", "Required value: must be one of boolean,date,integer,number,string"),
        ("spec.additionalPrinterColumns[0].JSONPath", "Required value"),
        ("spec.additionalPrinterColumns[1].type",
         'Invalid value: "time": must be one of boolean,date,integer,number,string'),
        ("spec.additionalPrinterColumns[1].format",
         'Invalid value: "uuid": must be one of byte,date,date-time,double,float,int32,int64,password'),
        ("spec.additionalPrinterColumns[1].JSONPath",
         'Invalid value: "metadata.creationTimestamp": must be a simple json path starting with .'),
    ]


def test_printer_columns_that_differ_are_validated_per_version() -> None:
    cols = [{"name": "X", "type": "int", "jsonPath": ".spec.x"}]
    causes = create_causes(crd(version("v1", additionalPrinterColumns=cols), version("v2", storage=False)))
    assert causes == [("spec.versions[0].additionalPrinterColumns[0].type",
                       'Invalid value: "int": must be one of boolean,date,integer,number,string')]


def _selectable_schema() -> dict[str, Any]:
    return schema(color={"type": "string"}, size={"type": "string", "enum": ["S", "M"]},
                  count={"type": "integer"}, on={"type": "boolean"}, ratio={"type": "number"},
                  tags={"type": "object", "additionalProperties": {"type": "string"}})


def test_selectable_fields_valid() -> None:
    fields = [{"jsonPath": p} for p in (".spec.color", ".spec.size", ".spec.count", ".spec.on", ".spec.tags.team")]
    assert create_causes(crd(version(schema=_selectable_schema(), selectableFields=fields))) == []


def test_selectable_fields_errors() -> None:
    s = _selectable_schema()
    s["openAPIV3Schema"]["properties"]["metadata"] = {"type": "object", "properties": {"name": {"type": "string"}}}
    fields = [{"jsonPath": ""}, {"jsonPath": ".spec.nope"}, {"jsonPath": ".spec.ratio"},
              {"jsonPath": ".metadata.name"}, {"jsonPath": ".spec.color"}, {"jsonPath": ".spec.color"},
              {"jsonPath": ".spec['color']"}, {"jsonPath": "spec.color"}]
    p = "spec.selectableFields"
    assert create_causes(crd(version(schema=s, selectableFields=fields))) == [
        (f"{p}[0].jsonPath", "Required value"),
        (f"{p}[1].jsonPath", 'Invalid value: ".spec.nope": is an invalid path: does not refer to a valid field'),
        (f"{p}[2].jsonPath", 'Invalid value: ".spec.ratio": must point to a field of type string, boolean or '
                             "integer. Enum string fields and strings with formats are allowed."),
        (f"{p}[3].jsonPath", 'Invalid value: ".metadata.name": must not point to fields in metadata'),
        (f"{p}[5].jsonPath", 'Duplicate value: ".spec.color"'),
        (f"{p}[6].jsonPath", 'Invalid value: ".spec[\'color\']": is an invalid path: array notation is not allowed'),
        (f"{p}[7].jsonPath", 'Invalid value: "spec.color": is an invalid path: expected [ or . but got: spec'),
    ]


def test_at_most_eight_selectable_fields() -> None:
    props = {f"f{i}": {"type": "string"} for i in range(9)}
    fields = [{"jsonPath": f".spec.f{i}"} for i in range(9)]
    assert create_causes(crd(version(schema=schema(**props), selectableFields=fields))) == [
        ("spec.selectableFields", "Too many: 9: must have at most 8 items")]


def test_per_version_selectable_fields_without_per_version_schema_as_upstream() -> None:
    # identical schemas move to spec.validation, so upstream finds no per-version schema here
    causes = create_causes(crd(version("v1", selectableFields=[{"jsonPath": ".spec.size"}]),
                               version("v2", storage=False)))
    assert causes == [("spec.versions[0].selectableFields", 'Invalid value: "": selectableFields may only be set '
                                                             "when version.schema.openAPIV3Schema is not included")]


def test_per_version_selectable_fields_with_per_version_schemas() -> None:
    v1 = version("v1", schema=schema(color={"type": "string"}), selectableFields=[{"jsonPath": ".spec.color"}])
    v2 = version("v2", storage=False, schema=schema(hue={"type": "string"}),
                 selectableFields=[{"jsonPath": ".spec.hue"}, {"jsonPath": ".spec.color"}])
    assert create_causes(crd(v1, v2)) == [
        ("spec.versions[1].selectableFields[1].jsonPath",
         'Invalid value: ".spec.color": is an invalid path: does not refer to a valid field')]


def test_identical_selectable_fields_with_different_schemas_as_upstream() -> None:
    # the fields move to spec.selectableFields while the schemas stay per version
    v1 = version("v1", schema=schema(color={"type": "string"}), selectableFields=[{"jsonPath": ".spec.color"}])
    v2 = version("v2", storage=False, schema=schema(color={"type": "string"}, hue={"type": "string"}),
                 selectableFields=[{"jsonPath": ".spec.color"}])
    assert create_causes(crd(v1, v2)) == [
        ("spec.selectableFields",
         'Invalid value: "": selectableFields may only be set when validations.schema is included')]


# -- create: conversion -----------------------------------------------------------------------

def test_none_conversion_forbids_webhook_settings() -> None:
    conv = {"strategy": "None", "webhook": {"clientConfig": {"url": "https://x"}, "conversionReviewVersions": ["v1"]}}
    assert create_causes(crd(conversion=conv)) == [
        ("spec.conversion.webhookClientConfig", "Forbidden: should not be set when strategy is not set to Webhook"),
        ("spec.conversion.conversionReviewVersions",
         "Forbidden: should not be set when strategy is not set to Webhook"),
    ]


def test_unknown_conversion_strategy() -> None:
    assert create_causes(crd(conversion={"strategy": "Magic"})) == [
        ("spec.conversion.strategy", 'Unsupported value: "Magic": supported values: "None", "Webhook"')]


def test_webhook_conversion_needs_client_config_and_review_versions() -> None:
    assert create_causes(crd(conversion={"strategy": "Webhook"})) == [
        ("spec.conversion.webhookClientConfig", "Required value: required when strategy is set to Webhook"),
        ("spec.conversion.conversionReviewVersions", "Required value"),
    ]
    conv = {"strategy": "Webhook", "webhook": {"clientConfig": {}, "conversionReviewVersions": ["v2", "v2", "V3"]}}
    assert create_causes(crd(conversion=conv)) == [
        ("spec.conversion.webhookClientConfig", "Required value: exactly one of url or service is required"),
        ("spec.conversion.conversionReviewVersions[1]", 'Invalid value: "v2": duplicate version'),
        ("spec.conversion.conversionReviewVersions[2]", f'Invalid value: "V3": {DNS1035}'),
        ("spec.conversion.conversionReviewVersions",
         'Invalid value: []string{"v2", "v2", "V3"}: must include at least one of v1, v1beta1'),
    ]


def test_webhook_url_rules() -> None:
    conv = {"strategy": "Webhook",
            "webhook": {"clientConfig": {"url": "http://me:pw@/hook?x=1#frag"}, "conversionReviewVersions": ["v1"]}}
    p = "spec.conversion.webhookClientConfig.url"
    form = "; desired format: https://host[/path]"
    assert create_causes(crd(conversion=conv)) == [
        (p, f"Invalid value: \"http\": 'https' is the only allowed URL scheme{form}"),
        (p, f'Invalid value: "": host must be provided{form}'),
        (p, 'Invalid value: "me:pw": user information is not permitted in the URL'),
        (p, 'Invalid value: "frag": fragments are not permitted in the URL'),
        (p, 'Invalid value: "x=1": query parameters are not permitted in the URL'),
    ]
    conv["webhook"]["clientConfig"]["url"] = "https://conv.example.com:8443/convert"
    assert create_causes(crd(conversion=conv)) == []
    conv["webhook"]["clientConfig"]["url"] = "://nope"
    assert create_causes(crd(conversion=conv)) == [
        (p, f'Required value: url must be a valid URL: parse "://nope": missing protocol scheme{form}')]


def test_webhook_service_rules() -> None:
    svc = {"namespace": "", "name": "", "port": 70000, "path": "/ok/Bad//"}
    conv = {"strategy": "Webhook", "webhook": {"clientConfig": {"service": svc}, "conversionReviewVersions": ["v1"]}}
    p = "spec.conversion.webhookClientConfig.service"
    causes = create_causes(crd(conversion=conv))
    assert causes[:4] == [
        (f"{p}.name", "Required value: service name is required"),
        (f"{p}.namespace", "Required value: service namespace is required"),
        (f"{p}.port", "Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive"),
        (f"{p}.path", 'Invalid value: "/ok/Bad//": segment[1]: a lowercase RFC 1123 subdomain must consist of lower '
                      "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                      "character (e.g. 'example.com', regex used for validation is "
                      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ]
    assert causes[4] == (f"{p}.path", 'Invalid value: "/ok/Bad//": segment[2] may not be empty')
    svc.update(namespace="default", name="conv", port=443, path="/convert")
    assert create_causes(crd(conversion=conv)) == []


def test_ca_bundle_is_not_checked_on_create() -> None:
    conv = {"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://conv", "caBundle":
            base64.b64encode(b"not a pem").decode()}, "conversionReviewVersions": ["v1"]}}
    assert create_causes(crd(conversion=conv)) == []


# -- create: preserveUnknownFields, API approval -----------------------------------------------

def test_preserve_unknown_fields_true_is_rejected() -> None:
    obj = crd(preserveUnknownFields=True)
    assert create_causes(obj) == [
        ("spec.preserveUnknownFields", "Invalid value: true: cannot set to true, set "
                                       "x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead")]


def test_preserve_unknown_fields_with_defaults_and_webhook_conversion() -> None:
    s = schema(size={"type": "string", "default": "M"})
    conv = {"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://c"}, "conversionReviewVersions": ["v1"]}}
    causes = create_causes(crd(version(schema=s), preserveUnknownFields=True, conversion=conv))
    assert causes == [
        ("spec.preserveUnknownFields", "Invalid value: true: must be false in order to use defaults in the schema"),
        ("spec.conversion.strategy", 'Invalid value: "Webhook": must be None if spec.preserveUnknownFields is true'),
        ("spec.preserveUnknownFields", "Invalid value: true: cannot set to true, set "
                                       "x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"),
    ]


def test_protected_groups_need_the_approval_annotation() -> None:
    p = "metadata.annotations[api-approved.kubernetes.io]"
    assert create_causes(crd(group="things.k8s.io")) == [
        (p, 'Required value: protected groups must have approval annotation "api-approved.kubernetes.io", '
            "see https://github.com/kubernetes/enhancements/pull/1111")]
    bad = crd(group="things.kubernetes.io")
    bad["metadata"]["annotations"] = {"api-approved.kubernetes.io": "yes"}
    assert create_causes(bad) == [
        (p, 'Invalid value: "yes": protected groups must have approval annotation "api-approved.kubernetes.io" with '
            'either a URL or a reason starting with "unapproved", '
            "see https://github.com/kubernetes/enhancements/pull/1111")]
    for value in ("unapproved, testing only", "https://github.com/kubernetes/kubernetes/pull/1"):
        ok = crd(group="things.k8s.io")
        ok["metadata"]["annotations"] = {"api-approved.kubernetes.io": value}
        assert create_causes(ok) == []


# -- schema checks are delegated ---------------------------------------------------------------

class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, bool]] = []

    def __call__(self, schema: dict[str, Any] | None, path: str, *, has_status: bool = False,
                 has_scale: bool = False) -> list[dict[str, str]]:
        self.calls.append((path, has_status, has_scale))
        return [{"reason": "FieldValueInvalid", "message": "Invalid value: \"x\": from schema", "field": path + ".type"}]


def test_identical_schemas_are_checked_once_at_spec_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _Recorder()
    monkeypatch.setattr(ext, "_schema_definition_validator", lambda: rec)
    sub = {"status": {}}
    causes = create_causes(crd(version("v1", subresources=sub), version("v2", storage=False)))
    assert rec.calls == [("spec.validation.openAPIV3Schema", True, False)]
    assert causes == [("spec.validation.openAPIV3Schema.type", 'Invalid value: "x": from schema')]


def test_different_schemas_are_checked_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _Recorder()
    monkeypatch.setattr(ext, "_schema_definition_validator", lambda: rec)
    scale = {"specReplicasPath": ".spec.r", "statusReplicasPath": ".status.r"}
    create_causes(crd(version("v1", subresources={"status": {}}),
                      version("v2", storage=False, schema=schema(other={"type": "string"}),
                              subresources={"scale": scale})))
    assert rec.calls == [("spec.versions[0].schema.openAPIV3Schema", True, False),
                         ("spec.versions[1].schema.openAPIV3Schema", False, True)]


def test_real_schema_module_reports_under_the_version_path() -> None:
    bad = version("v1", schema={"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "bogus"}}}})
    causes = create_causes(crd(bad, version("v2", storage=False)))
    assert causes, "a schema with an unknown type must be rejected"
    assert all(f.startswith("spec.versions[0].schema.openAPIV3Schema") for f, _ in causes)


# -- update -----------------------------------------------------------------------------------

def test_prepare_for_update_keeps_status_and_records_a_new_storage_version() -> None:
    old = stored(crd(version("v1"), version("v2", storage=False)), established=True)
    old_status = copy.deepcopy(old["status"])
    new = edited(old)
    new["spec"]["versions"][0]["storage"] = False
    new["spec"]["versions"][1]["storage"] = True
    new["status"] = {"storedVersions": ["hacked"]}
    S.prepare_for_update(new, old)
    assert new["status"]["storedVersions"] == ["v1", "v2"]
    assert new["status"]["conditions"] == old_status["conditions"]
    assert old["status"] == old_status  # the stored object is not touched
    assert S.validate_update(new, old, False) == []


def test_removing_a_stored_version_from_spec_is_rejected() -> None:
    old = stored(crd(version("v1", storage=False), version("v2")))
    old["status"]["storedVersions"] = ["v1", "v2"]
    new = edited(old)
    new["spec"]["versions"] = [version("v2")]
    assert update_causes(new, old) == [("status.storedVersions[0]", 'Invalid value: "v1": must appear in spec.versions')]


def test_group_and_plural_are_immutable() -> None:
    old = stored(crd())
    new = edited(old)
    new["spec"]["group"] = "example.org"
    new["spec"]["names"]["plural"] = "gizmos"
    assert update_causes(new, old) == [
        ("spec.group", 'Invalid value: "example.org": field is immutable'),
        ("spec.names.plural", 'Invalid value: "gizmos": field is immutable'),
    ]


def test_scope_and_kind_are_immutable_once_established() -> None:
    for est, expected in ((False, []), (True, [
            ("spec.scope", 'Invalid value: "Cluster": field is immutable'),
            ("spec.names.kind", 'Invalid value: "Gizmo": field is immutable')])):
        old = stored(crd(), established=est)
        new = edited(old)
        new["spec"]["scope"] = "Cluster"
        new["spec"]["names"].update(kind="Gizmo", singular="gizmo", listKind="GizmoList")
        assert update_causes(new, old) == expected


def test_schema_requirement_is_relaxed_for_crds_stored_without_schemas() -> None:
    old = stored(crd(version("v1"), version("v2", storage=False)))
    for v in old["spec"]["versions"]:
        del v["schema"]
    new = edited(old)
    new["spec"]["versions"][1]["served"] = False
    assert update_causes(new, old) == [
        ("spec.versions[0].schema.openAPIV3Schema", "Required value: because otherwise all fields are pruned")]


def test_unrecognized_review_versions_ratchet_on_update() -> None:
    conv = {"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://c"},
                                                "conversionReviewVersions": ["v9"]}}
    old = stored(crd(conversion=conv))
    new = edited(old)
    new["metadata"]["labels"] = {"a": "b"}
    assert update_causes(new, old) == []
    fresh = stored(crd())
    new = edited(fresh)
    new["spec"]["conversion"] = copy.deepcopy(conv)
    assert update_causes(new, fresh) == [
        ("spec.conversion.conversionReviewVersions",
         'Invalid value: []string{"v9"}: must include at least one of v1, v1beta1')]


def test_ca_bundle_is_checked_once_established() -> None:
    conv = {"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://c"}, "conversionReviewVersions": ["v1"]}}
    old = stored(crd(conversion=conv), established=True)
    new = edited(old)
    new["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = base64.b64encode(b"junk").decode()
    assert update_causes(new, old) == [
        ("spec.conversion.webhookClientConfig.caBundle",
         "Invalid value: []byte{0x6a, 0x75, 0x6e, 0x6b}: unable to load root certificates: "
         "unable to parse bytes as PEM block")]
    not_yet = stored(crd(conversion=conv))
    new = edited(not_yet)
    new["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = base64.b64encode(b"junk").decode()
    assert update_causes(new, not_yet) == []


def test_ca_bundle_with_a_real_certificate_passes() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conv-ca")])
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    conv = {"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://c"}, "conversionReviewVersions": ["v1"]}}
    old = stored(crd(conversion=conv), established=True)
    new = edited(old)
    new["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = base64.b64encode(pem).decode()
    assert update_causes(new, old) == []


def test_preserve_unknown_fields_true_is_kept_when_already_stored() -> None:
    old = stored(crd())
    old["spec"]["preserveUnknownFields"] = True
    new = edited(old)
    assert update_causes(new, old) == []


def test_generation_ignores_defaults_and_omitted_zero_values() -> None:
    old = stored(crd())
    new = crd()  # as a client PUTs it: no defaults, explicit zero values
    new["spec"]["preserveUnknownFields"] = False
    new["spec"]["names"]["shortNames"] = []
    assert S.spec_changed(new, old) is False
    new["spec"]["versions"][0]["served"] = False
    assert S.spec_changed(new, old) is True


def test_update_needs_a_resource_version() -> None:
    assert S.allow_unconditional_update is False
    old = stored(crd())
    new = edited(old)
    del new["metadata"]["resourceVersion"]
    assert update_causes(new, old) == [("metadata.resourceVersion", 'Invalid value: "": must be specified for an update')]


# -- status -----------------------------------------------------------------------------------

def test_status_update_checks_accepted_names_only() -> None:
    old = stored(crd())
    new = copy.deepcopy(old)
    new["status"]["acceptedNames"] = {"plural": "Widgets", "kind": "Widget", "listKind": "Widget"}
    new["status"]["storedVersions"] = ["v0"]
    merged = S.prepare_for_status_update(new, old)
    assert [(c["field"], c["message"]) for c in S.validate_status_update(merged, old)] == [
        ("status.acceptedNames.plural", f'Invalid value: "Widgets": {DNS1035}'),
        ("status.acceptedNames.listKind", 'Invalid value: "Widget": kind and listKind may not be the same'),
    ]


def test_status_update_keeps_spec_and_refills_empty_stored_versions() -> None:
    old = stored(crd())
    new = copy.deepcopy(old)
    new["spec"]["group"] = "other.com"
    new["status"]["storedVersions"] = []
    S.default(new)  # as the handler does to every write before the strategy's reset
    merged = S.prepare_for_status_update(new, old)
    assert merged["spec"] == old["spec"]
    assert merged["status"]["storedVersions"] == ["v1"]


def test_stored_versions_must_include_the_storage_version() -> None:
    old = stored(crd(version("v1"), version("v2", storage=False)))
    new = edited(old)
    S.prepare_for_update(new, old)
    new["status"]["storedVersions"] = ["v2"]
    assert [(c["field"], c["message"]) for c in S.validate_update(new, old, False)] == [
        ("status.storedVersions", 'Invalid value: []string{"v2"}: must have the storage version v1')]


# -- helpers ----------------------------------------------------------------------------------

def test_version_helpers() -> None:
    obj = crd(version("v1beta1", storage=False, served=False), version("v1"), version("v2", storage=False))
    assert ext.crd_name("example.com", "widgets") == "widgets.example.com"
    assert ext.storage_version(obj) == "v1"
    assert ext.storage_version(crd(version(storage=False))) == ""


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    obj = created(crd())
    assert ext.established(obj) is False
    ext.set_condition(obj, ext.ESTABLISHED, "False", "Installing", "the initial names have been accepted", "T1")
    assert obj["status"]["conditions"] == [{"type": "Established", "status": "False", "lastTransitionTime": "T1",
                                            "reason": "Installing",
                                            "message": "the initial names have been accepted"}]
    ext.set_condition(obj, ext.ESTABLISHED, "False", "StillInstalling", "", "T2")
    assert obj["status"]["conditions"] == [{"type": "Established", "status": "False", "lastTransitionTime": "T1",
                                            "reason": "StillInstalling"}]
    ext.set_condition(obj, ext.ESTABLISHED, "True", "InitialNamesAccepted", "done", "T3")
    cond = ext.find_condition(obj, ext.ESTABLISHED)
    assert cond is not None and cond["lastTransitionTime"] == "T3" and cond["status"] == "True"
    assert ext.established(obj) is True
    ext.set_condition(obj, ext.NAMES_ACCEPTED, "True", "NoConflicts", "no conflicts found", "T4")
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Established", "NamesAccepted"]
