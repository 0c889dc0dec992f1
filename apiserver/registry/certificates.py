"""certificates.k8s.io/v1 CertificateSigningRequest: upstream's pkg/registry/certificates strategy
and pkg/apis/certificates/validation.

* create: spec.username/uid/groups/extra come from the requesting user (whatever the client sent),
  status starts empty;
* update of the object: spec and status stay as stored (only metadata changes);
* /status: status.certificate and conditions other than Approved/Denied (existing Approved/Denied
  conditions are kept as stored, adding or removing one is refused);
* /approval: status.conditions only (status.certificate stays as stored);
* every write: a condition without lastUpdateTime/lastTransitionTime gets them (the transition
  time of an unchanged type/status is kept).

Who may approve or sign is admission's business (apiserver.admission.certificates); what a
well-known signer accepts is the signer's (controller_manager.certificates_signing).
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from apimachinery.duration import human_duration
from apimachinery.meta import now
from apimachinery.validation import (
    duplicate_cause,
    forbidden_cause,
    index,
    invalid_cause,
    is_dns1123_label,
    is_dns1123_subdomain,
    not_supported_cause,
    required_cause,
    too_long_cause,
    validate_object_meta,
    validate_object_meta_update,
    validate_path_segment_name,
)
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_list, as_str
from apiserver.registry.podspec import diff
from apiserver.tables import Column, age
from certs import csr as csrlib

TRUE_ONLY_TYPES = (csrlib.APPROVED, csrlib.DENIED, csrlib.FAILED)
STATUS_VALUES = ("False", "True", "Unknown")

_DOMAIN_MAX = 253
_PATH_MAX = 253 + 63 + 1
_SIGNER_MAX = _DOMAIN_MAX + _PATH_MAX + 1


def validate_signer_name(path: str, signer: Any) -> list[Cause]:
    """upstream ValidateSignerName: `<domain with a dot>/<path of subdomain labels>`."""
    if not signer:
        return [required_cause(path)]
    if not isinstance(signer, str):
        return [invalid_cause(path, signer, "must be a string")]
    segments = signer.split("/")
    if len(segments) != 2:
        return [invalid_cause(path, signer, "must be a fully qualified domain and path of the form 'example.com/signer-name'")]
    causes: list[Cause] = []
    domain, rest = segments
    if len(domain) > _DOMAIN_MAX:
        causes.append(too_long_cause(path, _DOMAIN_MAX))
    labels = domain.split(".")
    for lbl in labels:
        errs = is_dns1123_label(lbl)
        if errs:
            causes += [invalid_cause(path, domain, f'validating label "{lbl}": {e}') for e in errs]
            break
    if len(labels) < 2:
        causes.append(invalid_cause(path, domain, "should be a domain with at least two segments separated by dots"))
    for lbl in rest.split("."):
        errs = is_dns1123_subdomain(lbl)
        if errs:
            causes += [invalid_cause(path, rest, f'validating label "{lbl}": {e}') for e in errs]
            break
    if len(signer) > _SIGNER_MAX:
        causes.append(too_long_cause(path, _SIGNER_MAX))
    return causes


# -- validation options (upstream getValidationOptions: old data is tolerated) ----------------

class _Options:
    __slots__ = ("allow_arbitrary_certificate", "allow_both_approved_and_denied", "allow_duplicate_condition_types",
                 "allow_duplicate_usages", "allow_empty_condition_type", "allow_legacy_signer",
                 "allow_setting_approval", "allow_setting_certificate", "allow_unknown_usages")

    def __init__(self, new: Obj, old: Obj | None) -> None:
        self.allow_setting_approval = False
        self.allow_setting_certificate = False
        old_conds = csrlib.conditions(old) if old is not None else []
        old_types = [c.get("type") for c in old_conds]
        old_spec = as_dict(old.get("spec")) if old is not None else {}
        old_usages = as_list(old_spec.get("usages"))
        self.allow_both_approved_and_denied = csrlib.APPROVED in old_types and csrlib.DENIED in old_types
        self.allow_legacy_signer = old is not None and old_spec.get("signerName") == csrlib.LEGACY_UNKNOWN
        self.allow_duplicate_condition_types = len(set(old_types)) != len(old_types)
        self.allow_empty_condition_type = any(not t for t in old_types)
        self.allow_unknown_usages = any(u not in csrlib.VALID_USAGES for u in old_usages)
        self.allow_duplicate_usages = len(set(map(str, old_usages))) != len(old_usages)
        self.allow_arbitrary_certificate = old is not None and (
            _certificate_field(new) == _certificate_field(old)
            or csrlib.validate_certificate_pem(csrlib.issued_certificate(old)) is not None)


def _certificate_field(obj: Obj) -> Any:
    return as_dict(obj.get("status")).get("certificate") or None


def _find(obj: Obj, typ: str) -> list[Obj]:
    return [c for c in csrlib.conditions(obj) if c.get("type") == typ]


def _validate(obj: Obj, opts: _Options) -> list[Cause]:
    causes = validate_object_meta(as_dict(obj.get("metadata")), False, name_fn=validate_path_segment_name)
    spec = as_dict(obj.get("spec"))
    try:
        request = csrlib.decode_b64_field(spec.get("request"))
        csrlib.check_csr_signature(csrlib.parse_csr(request))
    except ValueError as e:
        causes.append(invalid_cause("spec.request", spec.get("request") or "", str(e)))
    usages = spec.get("usages")
    if not usages:
        causes.append(required_cause("spec.usages"))
    usages = as_list(usages)
    if not opts.allow_unknown_usages:
        for i, u in enumerate(usages):
            if u not in csrlib.VALID_USAGES:
                causes.append(not_supported_cause(index("spec.usages", i), u, csrlib.VALID_USAGES))
    if not opts.allow_duplicate_usages:
        seen: list[Any] = []
        for i, u in enumerate(usages):
            if u in seen:
                causes.append(duplicate_cause(index("spec.usages", i), u))
            seen.append(u)
    signer = spec.get("signerName")
    if not opts.allow_legacy_signer and signer == csrlib.LEGACY_UNKNOWN:
        causes.append(invalid_cause("spec.signerName", signer, "the legacy signerName is not allowed via this API version"))
    else:
        causes += validate_signer_name("spec.signerName", signer)
    exp = spec.get("expirationSeconds")
    if isinstance(exp, int) and not isinstance(exp, bool) and exp < 600:
        causes.append(invalid_cause("spec.expirationSeconds", exp, "may not specify a duration less than 600 seconds (10 minutes)"))
    causes += _validate_conditions(obj, opts)
    if not opts.allow_arbitrary_certificate:
        try:
            err = csrlib.validate_certificate_pem(csrlib.decode_b64_field(_certificate_field(obj)))
        except ValueError as e:
            err = str(e)
        if err:
            causes.append(invalid_cause("status.certificate", "<certificate data>", err))
    return causes


def _validate_conditions(obj: Obj, opts: _Options) -> list[Cause]:
    causes: list[Cause] = []
    path = "status.conditions"
    seen: set[str] = set()
    approved = denied = False
    for i, c in enumerate(csrlib.conditions(obj)):
        typ = as_str(c.get("type"))
        if not opts.allow_empty_condition_type and not typ:
            causes.append(required_cause(f"{index(path, i)}.type"))
        allowed = ("True",) if typ in TRUE_ONLY_TYPES else STATUS_VALUES
        st = c.get("status")
        if not st:
            causes.append(required_cause(f"{index(path, i)}.status"))
        elif st not in allowed:
            causes.append(not_supported_cause(f"{index(path, i)}.status", st, allowed))
        if not opts.allow_both_approved_and_denied:
            if typ == csrlib.APPROVED:
                approved = True
                if denied:
                    causes.append(invalid_cause(f"{index(path, i)}.type", typ, "Approved and Denied conditions are mutually exclusive"))
            elif typ == csrlib.DENIED:
                denied = True
                if approved:
                    causes.append(invalid_cause(f"{index(path, i)}.type", typ, "Approved and Denied conditions are mutually exclusive"))
        if not opts.allow_duplicate_condition_types:
            if typ in seen:
                causes.append(duplicate_cause(f"{index(path, i)}.type", typ))
            seen.add(typ)
    return causes


def _validate_update(new: Obj, old: Obj, opts: _Options) -> list[Cause]:
    causes = _validate(new, opts)
    for typ in (csrlib.APPROVED, csrlib.DENIED, csrlib.FAILED):
        if len(_find(new, typ)) < len(_find(old, typ)):
            causes.append(forbidden_cause("status.conditions", f'updates may not remove a condition of type "{typ}"'))
    if not opts.allow_setting_approval:
        for typ in (csrlib.APPROVED, csrlib.DENIED):
            olds, news = _find(old, typ), _find(new, typ)
            if len(news) > len(olds):
                causes.append(forbidden_cause("status.conditions", f'updates may not add a condition of type "{typ}"'))
            elif len(news) == len(olds) and news != olds:
                text = "\n".join(diff(o, n) for o, n in zip(olds, news, strict=True) if o != n)
                causes.append(forbidden_cause("status.conditions", f'updates may not modify a condition of type "{typ}"\n{text}'))
    if _certificate_field(new) != _certificate_field(old):
        if not opts.allow_setting_certificate:
            causes.append(forbidden_cause("status.certificate", "updates may not set certificate content"))
        elif _certificate_field(old):
            causes.append(forbidden_cause("status.certificate", "updates may not modify existing certificate content"))
    causes += validate_object_meta_update(as_dict(new.get("metadata")), as_dict(old.get("metadata")))
    return causes


# -- condition bookkeeping --------------------------------------------------------------------

def _default_conditions(obj: Obj) -> None:
    """upstream SetDefaults_CertificateSigningRequestCondition: a condition's status is True by default."""
    for c in csrlib.conditions(obj):
        if not c.get("status"):
            c["status"] = "True"


def _populate_timestamps(new: Obj, old: Obj) -> None:
    """upstream populateConditionTimestamps."""
    ts = now()
    for c in csrlib.conditions(new):
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = ts
        if not c.get("lastTransitionTime"):
            transition = ts
            for oc in csrlib.conditions(old):
                if oc.get("type") == c.get("type") and oc.get("status") == c.get("status") and oc.get("lastTransitionTime"):
                    transition = oc["lastTransitionTime"]
                    break
            c["lastTransitionTime"] = transition


def _preserve_instances(new: Obj, old: Obj, typ: str) -> None:
    """upstream preserveConditionInstances: keep the stored conditions of `typ` when their count is unchanged."""
    new_conds = as_list(as_dict(new.get("status")).get("conditions"))
    new_idx = [i for i, c in enumerate(new_conds) if isinstance(c, dict) and c.get("type") == typ]
    olds = _find(old, typ)
    if len(new_idx) != len(olds):
        return
    for i, oc in zip(new_idx, olds, strict=True):
        new_conds[i] = copy.deepcopy(oc)


def _requestor(user: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(user, "name", ""):
        out["username"] = user.name
    if getattr(user, "uid", ""):
        out["uid"] = user.uid
    if getattr(user, "groups", ()):
        out["groups"] = list(user.groups)
    extra = getattr(user, "extra", None) or {}
    if extra:
        out["extra"] = {k: list(v) for k, v in extra.items()}
    return out


# -- the strategy -----------------------------------------------------------------------------

class CertificateSigningRequestStrategy(Strategy):
    has_status = True
    selectable_fields = ("spec.signerName",)
    #: upstream: "We don't care what you call your certificate requests" (a path segment is all)
    name_validator = staticmethod(validate_path_segment_name)
    spec_subresources = ("approval",)

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for f in ("username", "uid", "groups", "extra"):
                spec.pop(f, None)
        obj["status"] = {}

    def prepare_for_create_by(self, obj: Obj, user: Any) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict) and user is not None:
            spec.update(_requestor(user))

    def default(self, obj: Obj) -> None:
        _default_conditions(obj)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return _validate(obj, _Options(obj, None))

    # main resource: only metadata changes
    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        if "spec" in old:
            new["spec"] = copy.deepcopy(old["spec"])
        else:
            new.pop("spec", None)

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        return _validate_update(new, old, _Options(new, old))

    # /status
    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        merged = copy.deepcopy(merged)
        if not isinstance(merged.get("status"), dict):
            merged["status"] = {}
        _default_conditions(merged)
        _preserve_instances(merged, old, csrlib.APPROVED)
        _preserve_instances(merged, old, csrlib.DENIED)
        _populate_timestamps(merged, old)
        return merged

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        opts = _Options(new, old)
        opts.allow_setting_certificate = True
        return _validate_update(new, old, opts)

    # /approval
    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> Obj:
        merged = Strategy.prepare_for_status_update(self, new, old)  # the stored object, the writer's labels/annotations
        merged = copy.deepcopy(merged)
        conds = as_dict(new.get("status")).get("conditions")
        status = copy.deepcopy(as_dict(old.get("status")))
        if conds:
            status["conditions"] = copy.deepcopy(conds)
        else:
            status.pop("conditions", None)
        merged["status"] = status
        _default_conditions(merged)
        _populate_timestamps(merged, old)
        return merged

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        opts = _Options(new, old)
        opts.allow_setting_approval = True
        return _validate_update(new, old, opts)

    # kubectl get csr (upstream printCertificateSigningRequest)
    def table_printer(self) -> tuple[list[Column], Any]:
        return COLUMNS, csr_row


def condition_text(obj: Obj) -> str:
    """upstream extractCSRStatus: Denied or Approved or Pending, then ,Failed and ,Issued."""
    types = {c.get("type") for c in csrlib.conditions(obj)}
    text = "Denied" if csrlib.DENIED in types else "Approved" if csrlib.APPROVED in types else "Pending"
    if csrlib.FAILED in types:
        text += ",Failed"
    if _certificate_field(obj):
        text += ",Issued"
    return text


def csr_row(obj: Obj, at: dt.datetime) -> list[Any]:
    meta, spec = as_dict(obj.get("metadata")), as_dict(obj.get("spec"))
    exp = spec.get("expirationSeconds")
    duration = human_duration(exp) if isinstance(exp, int) and not isinstance(exp, bool) else "<none>"
    return [meta.get("name"), age(meta.get("creationTimestamp"), at), spec.get("signerName") or "<none>",
            spec.get("username") or "", duration, condition_text(obj)]


COLUMNS: list[Column] = [
    ("Name", "string", "name", 0, "Name must be unique within a namespace. Is required when creating resources, "
                                  "although some resources may allow a client to request the generation of an "
                                  "appropriate name automatically."),
    ("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
    ("SignerName", "string", "", 0, "Requested signer for the request. It is a qualified name in the form: "
                                    "`scope-hostname.io/name`."),
    ("Requestor", "string", "", 0, "Base64-encoded PKCS#10 CSR data"),
    ("RequestedDuration", "string", "", 0, "expirationSeconds is the requested duration of validity of the issued "
                                           "certificate."),
    ("Condition", "string", "", 0, "Conditions applied to the request, such as approval or denial."),
]

