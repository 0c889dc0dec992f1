"""Validation shared by the workload kinds: selectors that match their pod template."""

from __future__ import annotations

from typing import Any

from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from apimachinery.validation import (
    forbidden_cause,
    invalid_cause,
    required_cause,
    validate_annotations,
    validate_labels,
)
from apiserver.registry import podspec
from apiserver.registry.base import Cause, Obj


def default_template(obj: Obj) -> None:
    tpl = (obj.get("spec") or {}).get("template")
    if isinstance(tpl, dict):
        podspec.default_pod_spec(tpl.get("spec"))


def validate_selector_and_template(obj: Obj, require_selector: bool = True) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required_cause("spec")]
    causes: list[Cause] = []
    sel = spec.get("selector")
    tpl = spec.get("template")
    if not isinstance(tpl, dict):
        return [required_cause("spec.template")]
    labels = (tpl.get("metadata") or {}).get("labels") or {}
    if sel is None or sel == {}:
        if require_selector:
            causes.append(required_cause("spec.selector"))
    else:
        try:
            selector = selector_from_label_selector(sel)
        except (LabelSelectorError, ValueError) as e:
            causes.append(invalid_cause("spec.selector", sel, str(e)))
        else:
            if selector.empty:
                causes.append(invalid_cause("spec.selector", sel, "empty selector is invalid for deployment"))
            elif not selector.matches(labels):
                causes.append(invalid_cause("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    pod_spec = tpl.get("spec")
    claims = [t for t in spec.get("volumeClaimTemplates") or [] if isinstance(t, dict)]
    if claims and isinstance(pod_spec, dict):
        # a StatefulSet's containers mount its claim templates by name: validate the pod as its
        # controller will create it, with a claim volume per template (unless the template has one)
        have = {v.get("name") for v in pod_spec.get("volumes") or [] if isinstance(v, dict)}
        extra = [{"name": n, "persistentVolumeClaim": {"claimName": n}}
                 for n in ((t.get("metadata") or {}).get("name") for t in claims) if n and n not in have]
        pod_spec = {**pod_spec, "volumes": [*(pod_spec.get("volumes") or []), *extra]}
    causes += podspec.validate_pod_spec(pod_spec, "spec.template.spec")
    return causes


def validate_replicas(spec: dict[str, Any], field: str = "replicas") -> list[Cause]:
    v = spec.get(field)
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
        return [invalid_cause(f"spec.{field}", v, "must be greater than or equal to 0")]
    return []


def selector_immutable(new: Obj, old: Obj) -> list[Cause]:
    ns, os_ = (new.get("spec") or {}).get("selector"), (old.get("spec") or {}).get("selector")
    if ns != os_:
        return [invalid_cause("spec.selector", ns, "field is immutable")]
    return []


def validate_pod_template_spec(tpl: Any, path: str) -> list[Cause]:
    """Upstream ValidatePodTemplateSpec: the template's labels and annotations, then its pod spec
    (a missing spec is an empty one there, so the first complaint is about its containers)."""
    if not isinstance(tpl, dict):
        return [required_cause(path)]
    meta = tpl.get("metadata") or {}
    causes = validate_labels(meta.get("labels"), f"{path}.labels")
    causes += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    spec = tpl.get("spec") or {}
    causes += podspec.validate_pod_spec(spec, f"{path}.spec")
    if isinstance(spec, dict) and spec.get("ephemeralContainers"):
        causes.append(forbidden_cause(f"{path}.spec.ephemeralContainers", "ephemeral containers not allowed in pod template"))
    return causes
