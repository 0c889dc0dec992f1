"""Strategies for rbac.authorization.k8s.io/v1 kinds."""

from __future__ import annotations

from apimachinery.validation import invalid_cause, not_supported_cause, required_cause
from apiserver.registry.base import Cause, Obj, Strategy


def _path_segment_ok(name: str, prefix: bool = False) -> list[str]:
    """RBAC names are path segments (upstream ValidateRBACName): no '/', '%', '.' or '..'."""
    if name in (".", ".."):
        return [f'may not be "{name}"']
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


class RoleStrategy(Strategy):
    allow_create_on_update = True
    name_validator = staticmethod(_path_segment_ok)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        for i, rule in enumerate(obj.get("rules") or []):
            p = f"rules[{i}]"
            if not isinstance(rule, dict):
                causes.append(invalid_cause(p, rule, "must be an object"))
                continue
            if not rule.get("verbs"):
                causes.append(required_cause(f"{p}.verbs", "verbs must contain at least one value"))
            if rule.get("nonResourceURLs"):
                if namespaced:
                    causes.append(invalid_cause(f"{p}.nonResourceURLs", rule["nonResourceURLs"],
                                                "namespaced rules cannot apply to non-resource URLs"))
                if rule.get("resources") or rule.get("apiGroups"):
                    causes.append(invalid_cause(f"{p}.nonResourceURLs", rule["nonResourceURLs"],
                                                "rules cannot apply to both regular resources and non-resource URLs"))
            elif not rule.get("resources"):
                causes.append(required_cause(f"{p}.resources", "resource rules must supply at least one resource"))
            elif rule.get("apiGroups") is None:
                causes.append(required_cause(f"{p}.apiGroups", "resource rules must supply at least one api group"))
        return causes


class RoleBindingStrategy(Strategy):
    allow_create_on_update = True
    name_validator = staticmethod(_path_segment_ok)
    SUBJECT_KINDS = ("ServiceAccount", "User", "Group")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        ref = obj.get("roleRef")
        if not isinstance(ref, dict):
            causes.append(required_cause("roleRef"))
        else:
            if ref.get("apiGroup") != "rbac.authorization.k8s.io":
                causes.append(not_supported_cause("roleRef.apiGroup", ref.get("apiGroup"), ("rbac.authorization.k8s.io",)))
            allowed = ("ClusterRole", "Role") if namespaced else ("ClusterRole",)
            if ref.get("kind") not in allowed:
                causes.append(not_supported_cause("roleRef.kind", ref.get("kind"), allowed))
            if not ref.get("name"):
                causes.append(required_cause("roleRef.name"))
        for i, s in enumerate(obj.get("subjects") or []):
            p = f"subjects[{i}]"
            if not isinstance(s, dict):
                causes.append(invalid_cause(p, s, "must be an object"))
                continue
            if s.get("kind") not in self.SUBJECT_KINDS:
                causes.append(not_supported_cause(f"{p}.kind", s.get("kind"), self.SUBJECT_KINDS))
            if not s.get("name"):
                causes.append(required_cause(f"{p}.name"))
            if s.get("kind") == "ServiceAccount" and not s.get("namespace") and not namespaced:
                causes.append(required_cause(f"{p}.namespace"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        if new.get("roleRef") != old.get("roleRef"):
            causes.append(invalid_cause("roleRef", new.get("roleRef"), "cannot change roleRef"))
        return causes
