"""The per-kind strategy: what upstream's registry `strategy.go` files decide.

The generic handler calls these hooks at fixed points of every write, so a kind only
states what differs: its defaults, its validation, which part is status, how it is
deleted and which fields can be selected on.
"""

from __future__ import annotations

from typing import Any

from apimachinery.validation import name_is_dns_subdomain, validate_object_meta, validate_object_meta_update

Obj = dict[str, Any]
Cause = dict[str, str]


class Strategy:
    #: `metadata.generation` starts at 1 and is bumped whenever `spec` changes.
    tracks_generation = False
    #: Has a `status` subresource: main-resource writes keep the stored status and
    #: status writes keep everything but status.
    has_status = False
    #: PUT on a missing object creates it (upstream's AllowCreateOnUpdate).
    allow_create_on_update = False
    #: PUT without metadata.resourceVersion is allowed (last write wins).
    allow_unconditional_update = True
    #: DELETE answers with the deleted object instead of a Status.
    return_deleted_object = False
    #: A CRD's conversion webhook (apiserver.crd.conversion.ConversionWebhook): objects are then
    #: converted by the handler, asynchronously, between the stored and the served version.
    conversion_webhook: Any = None
    #: What a DELETE without a propagation policy does to dependents ("Orphan" for batch/v1
    #: Jobs, as upstream's DefaultGarbageCollectionPolicy); with it, DELETE warns as upstream does.
    default_propagation = "Background"
    default_propagation_warning = ""
    #: Extra field-selector labels beyond metadata.name / metadata.namespace.
    selectable_fields: tuple[str, ...] = ()
    #: Metadata a /status write may change (the rest is kept as stored).
    status_writable_meta: tuple[str, ...] = ("labels", "annotations")
    #: Strategic merge patches apply (custom resources refuse them: 415, as upstream).
    strategic_merge = True
    #: A Warning every answer carries (a deprecated custom resource version).
    deprecation_warning = ""
    #: Validates the object name (and generateName prefix): `(name, prefix) -> [messages]`.
    name_validator: Any = staticmethod(name_is_dns_subdomain)

    # -- create -------------------------------------------------------------------------

    def prepare_for_create(self, obj: Obj) -> None:
        """Clear what clients may not set at creation (e.g. status)."""
        if self.has_status:
            obj.pop("status", None)
            self.initial_status(obj)

    def initial_status(self, obj: Obj) -> None:
        """Status a new object starts with, if any."""

    @property
    def validates_off_loop(self) -> bool:
        """Whether validation may take long enough (CEL rules) to run off the event loop."""
        return False

    def prepare_for_create_by(self, obj: Obj, user: Any) -> None:
        """Record the requesting user in a new object (CertificateSigningRequest's spec.username...)."""

    def default(self, obj: Obj) -> None:
        """Fill in upstream's defaults in place."""

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return validate_object_meta(obj.get("metadata") or {}, namespaced, name_fn=self.name_validator)

    # -- update -------------------------------------------------------------------------

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Does this update bump metadata.generation (when the kind tracks it)?"""
        return new.get("spec") != old.get("spec")

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = self.validate(new, namespaced)
        causes += validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return causes

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        """Return the object to store for a /status write: the old one with new status."""
        merged = dict(old)
        # Only status changes through /status. Upstream's status strategies of the built-in
        # kinds reset the spec but keep the writer's labels and annotations (the deployment
        # controller records revisions that way); the rest of metadata stays as stored.
        merged["metadata"] = dict(old["metadata"])
        new_meta = new.get("metadata") or {}
        for f in self.status_writable_meta:
            if f in new_meta:
                merged["metadata"][f] = new_meta[f]
            else:
                merged["metadata"].pop(f, None)
        if "status" in new:
            merged["status"] = new["status"]
        else:
            merged.pop("status", None)
        return merged

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return []

    # -- subresources that write one part of the spec ------------------------------------

    #: e.g. pods/ephemeralcontainers: a write keeps the stored object but for that part
    spec_subresources: tuple[str, ...] = ()

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> Obj:
        """The object to store for a write to one of `spec_subresources`."""
        raise NotImplementedError(subresource)

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        raise NotImplementedError(subresource)

    # -- delete -------------------------------------------------------------------------

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        """Seconds of graceful deletion for this object (0 = no grace period)."""
        return 0

    def holds_deletion(self, obj: Obj) -> bool:
        """True while something besides metadata.finalizers keeps a deleted object
        (a namespace's spec.finalizers)."""
        return False

    def mark_deleting(self, obj: Obj) -> None:
        """Adjust an object that was just given a deletionTimestamp."""

    # -- versions -----------------------------------------------------------------------

    def to_storage(self, res: Any, obj: Obj) -> Obj:
        """A served version's object → the stored form (identity unless a kind converts)."""
        return obj

    def output_converter(self, res: Any) -> Any:
        """None, or a function stored form → the served version of `res`."""
        return None

    # -- allocations (side keys written in the same etcd transaction) -------------------

    async def allocate(self, server: Any, res: Any, obj: Obj, old: Obj | None, dry_run: bool) -> list[Any]:
        """Reserve what the object needs (e.g. a ClusterIP) → storage SideEffects."""
        return []

    async def release(self, server: Any, side: list[Any], committed: bool) -> None:
        """Settle in-memory reservations behind `side` once its write committed or failed."""

    async def on_side_key_taken(self, server: Any, key: bytes, obj: Obj) -> None:
        """A side key was taken concurrently; the write is retried after this."""

    async def release_side_effects(self, server: Any, res: Any, obj: Obj) -> list[Any]:
        """SideEffects that free what a deleted object held."""
        return []

    # -- reads --------------------------------------------------------------------------

    def label_selector(self, obj: Obj) -> dict[str, Any] | None:
        """spec.selector as a metav1.LabelSelector (/scale's status.selector); kinds whose
        selector is a plain label map (ReplicationController) convert it."""
        return (obj.get("spec") or {}).get("selector")

    # -- /scale (custom resources say where their replicas and selector live) ---------

    def scale_spec_replicas(self, obj: Obj) -> Any:
        return (obj.get("spec") or {}).get("replicas", 0)

    def scale_status_replicas(self, obj: Obj) -> Any:
        return (obj.get("status") or {}).get("replicas", 0)

    def scale_selector(self, obj: Obj, format_selector: Any) -> str:
        """status.selector of the Scale: the label selector in its string form."""
        return format_selector(self.label_selector(obj))

    def set_scale_replicas(self, obj: Obj, replicas: int) -> None:
        obj.setdefault("spec", {})["replicas"] = replicas

    def fields(self, obj: Obj) -> dict[str, str]:
        """Field-selector labels (metadata.name/namespace added by the caller)."""
        out: dict[str, str] = {}
        for path in self.selectable_fields:
            out[path] = field_value(obj, path)
        return out


# Type-tolerant readers for validation code: client JSON may hold anything where a kind expects
# a type; upstream's decoder would have refused it, here it reads as the zero value.

def default_field(d: Obj, key: str, value: Any) -> Any:
    """Default a field Go declares without a pointer: upstream's defaulters see its zero value
    ("" or 0) as unset, like a missing one or null — `imagePullPolicy: ""` (a Helm value left
    empty) is defaulted, not refused. Returns the field's value."""
    cur = d.get(key)
    if cur is None or (type(cur) is type(value) and not cur):
        d[key] = value
    return d[key]


def as_dict(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def as_str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def as_int(v: Any) -> int | None:
    """An integer field; None for anything else (a JSON boolean is no integer)."""
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def field_value(obj: Obj, path: str) -> str:
    """The string form of a dotted field (missing → "", bools lowercase)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)

