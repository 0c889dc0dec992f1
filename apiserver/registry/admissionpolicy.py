"""Strategies for admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy and
ValidatingAdmissionPolicyBinding (enforced by apiserver/admission/policy.py).

Defaults and validation follow upstream's admissionregistration/v1 defaults.go and
validation.go: a policy needs matchConstraints with resourceRules (they give its expressions
their types), and validations or auditAnnotations; every CEL expression must compile; a
binding names its policy, at least one validation action (never both Deny and Warn) and, with a
paramRef, a name or a selector and what to do when no parameter is found. As upstream, an
update does not compile match conditions again that did not change (old objects stay writable).
"""

from __future__ import annotations

import re
from typing import Any

from apimachinery.validation import (
    child,
    duplicate_cause,
    forbidden_cause,
    index,
    invalid_cause,
    is_dns1035_label,
    is_dns1123_subdomain,
    is_qualified_name,
    name_is_dns_subdomain,
    not_supported_cause,
    required_cause,
    type_invalid_cause,
    validate_label_selector,
    validate_path_segment_name,
)
from apiserver.registry.admissionregistration import (
    FAILURE_POLICIES,
    MATCH_POLICIES,
    string_list,
    validate_match_conditions,
    validate_rule,
)
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_list, as_str

VALIDATION_ACTIONS = ("Audit", "Deny", "Warn")
PARAMETER_NOT_FOUND_ACTIONS = ("Allow", "Deny")
#: a validation's reason: the status reason (and code) of a denial
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}
MAX_AUDIT_ANNOTATIONS = 20
MAX_VALUE_EXPRESSION = 5 * 1024
_CEL_IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_NEWLINES = re.compile(r"[\n\r]+")


# -- defaulting ---------------------------------------------------------------------------


def default_match_resources(mr: Obj) -> None:
    mr.setdefault("matchPolicy", "Equivalent")
    for sel in ("namespaceSelector", "objectSelector"):
        if mr.get(sel) is None:
            mr[sel] = {}
    for rules in ("resourceRules", "excludeResourceRules"):
        for rule in as_list(mr.get(rules)):
            if isinstance(rule, dict) and rule.get("scope") is None:
                rule["scope"] = "*"


# -- validation ---------------------------------------------------------------------------


def _compile_error(expr: str) -> str:
    from apiserver.admission.matchconditions import compile_error

    return compile_error(expr)


def _expression(obj: Obj, key: str, path: str, causes: list[Cause], missing: str = "") -> str:
    """The (trimmed) expression at obj[key]; a cause when it is missing or does not compile."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        causes.append(type_invalid_cause(child(path, key), value, "must be of type string"))
        return ""
    expr = (value or "").strip()
    if not expr:
        causes.append(required_cause(child(path, key), missing))
        return ""
    err = _compile_error(expr)
    if err:
        causes.append(invalid_cause(child(path, key), value, err))
    return expr


def _validate_param_kind(pk: Any, path: str) -> list[Cause]:
    if not isinstance(pk, dict):
        return [type_invalid_cause(path, pk, "must be of type object")]
    causes: list[Cause] = []
    api_version = as_str(pk.get("apiVersion"))
    if not api_version:
        causes.append(required_cause(child(path, "apiVersion")))
    elif api_version.count("/") > 1:
        causes.append(invalid_cause(child(path, "apiVersion"), api_version,
                                    f"unexpected GroupVersion string: {api_version}"))
    else:
        group, _, version = api_version.rpartition("/")
        if group and (errs := is_dns1123_subdomain(group)):
            causes.append(invalid_cause(child(path, "apiVersion"), group, ",".join(errs)))
        if not version:
            causes.append(invalid_cause(child(path, "apiVersion"), api_version, "version must be specified"))
        elif errs := is_dns1035_label(version):
            causes.append(invalid_cause(child(path, "apiVersion"), version, ",".join(errs)))
    kind = as_str(pk.get("kind"))
    if not kind:
        causes.append(required_cause(child(path, "kind")))
    elif errs := is_dns1035_label(kind.lower()):
        causes.append(invalid_cause(child(path, "kind"), kind, "may have mixed case, but should otherwise match: "
                                    + ",".join(errs)))
    return causes


def _validate_named_rule(rule: Any, path: str) -> list[Cause]:
    causes = validate_rule(rule, path)
    if not isinstance(rule, dict):
        return causes
    seen: set[str] = set()
    for i, name in enumerate(string_list(rule.get("resourceNames"), child(path, "resourceNames"), causes)):
        p = index(child(path, "resourceNames"), i)
        causes += [invalid_cause(p, name, m) for m in validate_path_segment_name(name)]
        if name in seen:
            causes.append(duplicate_cause(p, name))
        seen.add(name)
    return causes


def validate_match_resources(mr: Any, path: str) -> list[Cause]:
    if mr is None:
        return []
    if not isinstance(mr, dict):
        return [type_invalid_cause(path, mr, "must be of type object")]
    causes: list[Cause] = []
    mp = mr.get("matchPolicy")
    if mp is None:
        causes.append(required_cause(child(path, "matchPolicy")))
    elif mp not in MATCH_POLICIES:
        causes.append(not_supported_cause(child(path, "matchPolicy"), mp, MATCH_POLICIES))
    for sel in ("namespaceSelector", "objectSelector"):
        if mr.get(sel) is None:
            causes.append(required_cause(child(path, sel)))
        else:
            causes += validate_label_selector(mr.get(sel), child(path, sel))
    for rules in ("resourceRules", "excludeResourceRules"):
        value = mr.get(rules)
        if value is not None and not isinstance(value, list):
            causes.append(type_invalid_cause(child(path, rules), value, "must be of type array"))
            continue
        for i, rule in enumerate(value or []):
            causes += _validate_named_rule(rule, index(child(path, rules), i))
    return causes


def _validate_validation(v: Any, path: str) -> list[Cause]:
    if not isinstance(v, dict):
        return [type_invalid_cause(path, v, "must be of type object")]
    causes: list[Cause] = []
    _expression(v, "expression", path, causes, "expression is not specified")
    message_expression = v.get("messageExpression")
    if isinstance(message_expression, str) and message_expression:
        if not message_expression.strip():
            causes.append(invalid_cause(child(path, "messageExpression"), message_expression,
                                        "must be non-empty if specified"))
        else:
            _expression(v, "messageExpression", path, causes)
    message = v.get("message")
    if isinstance(message, str) and message:
        if not message.strip():
            causes.append(invalid_cause(child(path, "message"), message, "message must be non-empty if specified"))
        elif _NEWLINES.search(message.strip()):
            causes.append(invalid_cause(child(path, "message"), message, "message must not contain line breaks"))
    reason = v.get("reason")
    if reason is not None and reason not in REASON_CODES:
        causes.append(not_supported_cause(child(path, "reason"), reason, sorted(REASON_CODES)))
    return causes


def _validate_variable(v: Any, path: str) -> list[Cause]:
    if not isinstance(v, dict):
        return [type_invalid_cause(path, v, "must be of type object")]
    causes: list[Cause] = []
    name = as_str(v.get("name"))
    if not name.strip():
        causes.append(required_cause(child(path, "name"), "name is not specified"))
    elif not _CEL_IDENTIFIER.match(name):
        causes.append(invalid_cause(child(path, "name"), name, "name is not a valid CEL identifier"))
    _expression(v, "expression", path, causes, "expression is not specified")
    return causes


def _validate_audit_annotation(a: Any, policy_name: str, path: str) -> list[Cause]:
    if not isinstance(a, dict):
        return [type_invalid_cause(path, a, "must be of type object")]
    causes: list[Cause] = []
    key = as_str(a.get("key"))
    if policy_name:
        causes += [invalid_cause(child(path, "key"), f"{policy_name}/{key}", m)
                   for m in is_qualified_name(f"{policy_name}/{key}")]
    else:
        causes.append(invalid_cause(child(path, "key"), key, "requires metadata.name be non-empty"))
    value = as_str(a.get("valueExpression")).strip()
    if len(value) > MAX_VALUE_EXPRESSION:
        causes.append(required_cause(child(path, "valueExpression"),
                                     f"must not exceed {MAX_VALUE_EXPRESSION} bytes in length"))
    else:
        _expression(a, "valueExpression", path, causes, "valueExpression is not specified")
    return causes


def validate_policy(obj: Obj, old: Obj | None = None) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required_cause("spec")] if spec is None else [type_invalid_cause("spec", spec, "must be of type object")]
    causes: list[Cause] = []
    fp = spec.get("failurePolicy")
    if fp is None:
        causes.append(required_cause("spec.failurePolicy"))
    elif fp not in FAILURE_POLICIES:
        causes.append(not_supported_cause("spec.failurePolicy", fp, FAILURE_POLICIES))
    if spec.get("paramKind") is not None:
        causes += _validate_param_kind(spec.get("paramKind"), "spec.paramKind")
    mc = spec.get("matchConstraints")
    if mc is None:
        causes.append(required_cause("spec.matchConstraints"))
    else:
        causes += validate_match_resources(mc, "spec.matchConstraints")
        if isinstance(mc, dict) and not mc.get("resourceRules"):
            # the rules give the expressions their types
            causes.append(required_cause("spec.matchConstraints.resourceRules"))
    old_spec = as_dict((old or {}).get("spec"))
    if old is None or (old_spec.get("paramKind"), old_spec.get("matchConditions")) != (
            spec.get("paramKind"), spec.get("matchConditions")):
        causes += validate_match_conditions(spec.get("matchConditions"), "spec.matchConditions")
    names: set[str] = set()
    for i, v in enumerate(as_list(spec.get("variables"))):
        causes += _validate_variable(v, index("spec.variables", i))
        name = as_str(as_dict(v).get("name"))
        if name and name in names:
            causes.append(duplicate_cause(child(index("spec.variables", i), "name"), name))
        names.add(name)
    validations, annotations = as_list(spec.get("validations")), as_list(spec.get("auditAnnotations"))
    if not validations and not annotations:
        for f in ("validations", "auditAnnotations"):
            causes.append(required_cause(f"spec.{f}", "validations or auditAnnotations must contain at least one item"))
        return causes
    for i, v in enumerate(validations):
        causes += _validate_validation(v, index("spec.validations", i))
    if len(annotations) > MAX_AUDIT_ANNOTATIONS:
        causes.append(invalid_cause("spec.auditAnnotations", annotations,
                                    f"must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"))
    keys: set[str] = set()
    policy_name = as_str(as_dict(obj.get("metadata")).get("name"))
    for i, a in enumerate(annotations):
        p = index("spec.auditAnnotations", i)
        causes += _validate_audit_annotation(a, policy_name, p)
        key = as_str(as_dict(a).get("key"))
        if key in keys:
            causes.append(duplicate_cause(child(p, "key"), key))
        keys.add(key)
    return causes


def _validate_param_ref(pr: Any, path: str) -> list[Cause]:
    if pr is None:
        return []
    if not isinstance(pr, dict):
        return [type_invalid_cause(path, pr, "must be of type object")]
    causes: list[Cause] = []
    name, selector = as_str(pr.get("name")), pr.get("selector")
    if name:
        causes += [invalid_cause(child(path, "name"), name, m) for m in validate_path_segment_name(name)]
        if selector is not None:
            causes.append(forbidden_cause(child(path, "name"), "name and selector are mutually exclusive"))
    if selector is not None:
        causes += validate_label_selector(selector, child(path, "selector"))
        if name:
            causes.append(forbidden_cause(child(path, "selector"), "name and selector are mutually exclusive"))
    if not name and selector is None:
        causes.append(required_cause(path, "one of name or selector must be specified"))
    namespace = as_str(pr.get("namespace"))
    if namespace:
        causes += [invalid_cause(child(path, "namespace"), namespace, m) for m in is_dns1123_subdomain(namespace)]
    action = pr.get("parameterNotFoundAction")
    if not action:
        causes.append(required_cause(child(path, "parameterNotFoundAction")))
    elif action not in PARAMETER_NOT_FOUND_ACTIONS:
        causes.append(not_supported_cause(child(path, "parameterNotFoundAction"), action, PARAMETER_NOT_FOUND_ACTIONS))
    return causes


def _validate_validation_actions(actions: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    listed = string_list(actions, path, causes)
    for i, action in enumerate(listed):
        if action not in VALIDATION_ACTIONS:
            causes.append(not_supported_cause(index(path, i), action, VALIDATION_ACTIONS))
        if action in seen:
            causes.append(duplicate_cause(index(path, i), action))
        seen.add(action)
    if {"Deny", "Warn"} <= seen:
        causes.append(invalid_cause(path, listed, "must not contain both Deny and Warn (repeating the same validation "
                                                  "failure information in the API response and headers serves no purpose)"))
    if not seen:
        causes.append(required_cause(path, "at least one validation action is required"))
    return causes


def validate_binding(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required_cause("spec")] if spec is None else [type_invalid_cause("spec", spec, "must be of type object")]
    causes: list[Cause] = []
    policy = spec.get("policyName")
    if not policy:
        causes.append(required_cause("spec.policyName"))
    elif not isinstance(policy, str):
        causes.append(type_invalid_cause("spec.policyName", policy, "must be of type string"))
    else:
        causes += [invalid_cause("spec.policyName", policy, m) for m in name_is_dns_subdomain(policy)]
    causes += _validate_param_ref(spec.get("paramRef"), "spec.paramRef")
    causes += validate_match_resources(spec.get("matchResources"), "spec.matchResources")
    causes += _validate_validation_actions(spec.get("validationActions"), "spec.validationActions")
    return causes


# -- strategies ---------------------------------------------------------------------------


class ValidatingAdmissionPolicyStrategy(Strategy):
    tracks_generation = True
    has_status = True  # typeChecking and conditions: written by a controller, never by spec writes

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("failurePolicy", "Fail")
        if isinstance(spec.get("matchConstraints"), dict):
            default_match_resources(spec["matchConstraints"])

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return super().validate(obj, namespaced) + validate_policy(obj)

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        from apimachinery.validation import validate_object_meta_update

        causes = Strategy.validate(self, new, namespaced) + validate_policy(new, old)
        return causes + validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})


class ValidatingAdmissionPolicyBindingStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if isinstance(spec.get("matchResources"), dict):
            default_match_resources(spec["matchResources"])
        pr = spec.get("paramRef")
        if isinstance(pr, dict) and pr.get("parameterNotFoundAction") is None:
            pr["parameterNotFoundAction"] = "Deny"

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return super().validate(obj, namespaced) + validate_binding(obj)
