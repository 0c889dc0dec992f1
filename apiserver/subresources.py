"""Subresources that act on the parent object: status, ephemeralcontainers, scale, binding, finalize.

Each reuses the generic update path (optimistic concurrency, admission, validation);
only the mapping between the subresource's object and the parent differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apimachinery.meta import now
from apimachinery.patch import json_patch, merge_patch
from apiserver import admission as adm
from apiserver.handler import PATCH_TYPES, _deep_copy, _dry_run
from apiserver.http import Request, Response, StreamResponse, decode_document, json_response, raw_json
from apiserver.requestinfo import RequestInfo
from apiserver.resources import SUBRESOURCE_KINDS, Resource
from apiserver.watchcache import Filter

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.server import APIServer


def _too_many(pdb: str, why: str) -> errors.StatusError:
    """429 as upstream words an eviction blocked by a disruption budget."""
    return errors.StatusError(
        429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
        {"causes": [{"reason": "DisruptionBudget", "message": why}]},
    )


def format_label_selector(sel: dict[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: `a=b,c in (d,e),!f`."""
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), sorted(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


class Subresources:
    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def serve(
        self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo
    ) -> Response | StreamResponse:
        sub = info.subresource
        handler = getattr(self, f"_{sub}", None)
        if handler is None:
            raise errors.route_not_found(sub)
        return await handler(req, info, res, ns, user)

    async def read_body(self, req: Request, res: Resource, sub: str) -> dict[str, Any]:
        """A subresource's request body (Binding, Scale, Eviction), type-checked against its kind's
        schema as an object body is (wrong JSON types are 400s, typed nulls become absent)."""
        body = await self.server.api.read_object(req, res)
        self._check_body(sub, body)
        return body

    def _check_body(self, sub: str, body: dict[str, Any]) -> None:
        group, version, kind = SUBRESOURCE_KINDS[sub]
        if body.get("kind") not in (None, kind):
            raise errors.bad_request(f"expected a {kind} object, got {body.get('kind')}")
        self.server.fields.check(group, version, kind, body)

    def _not_allowed(self) -> errors.StatusError:
        return errors.method_not_allowed("the server does not allow this method on the requested resource")

    # -- status, ephemeralcontainers (pods) -----------------------------------------------

    async def _status(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo) -> Response:
        """Subresources whose object is the parent itself: GET it, PUT or PATCH it through the
        generic update path as that subresource, whose strategy hooks decide what of the write is
        kept (/status: the status; pods/ephemeralcontainers: spec.ephemeralContainers)."""
        api = self.server.api
        if info.verb == "get":
            kv = await api.read(res, ns, info.name)
            return raw_json(await api.output(res, orjson.dumps(kv.decode())))
        if info.verb == "update":
            return await api.replace(req, res, ns, info.name, user, info.subresource)
        if info.verb == "patch":
            out, warnings, _ = await api.patch_object(req, res, ns, info.name, user, info.subresource)
            return raw_json(api.to_output(res, orjson.dumps(out)), 200, warnings)
        raise self._not_allowed()

    _ephemeralcontainers = _status
    _approval = _status  # certificatesigningrequests/approval

    # -- scale --------------------------------------------------------------------------

    @staticmethod
    def to_scale(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
                "creationTimestamp": meta.get("creationTimestamp"),
            },
            "spec": {"replicas": res.strategy.scale_spec_replicas(obj)},
            "status": {
                "replicas": res.strategy.scale_status_replicas(obj),
                "selector": res.strategy.scale_selector(obj, format_label_selector),
            },
        }

    async def _scale(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo) -> Response:
        api = self.server.api
        if info.verb == "get":
            kv = await api.read(res, ns, info.name)
            return json_response(self.to_scale(res, (await api.converted(res, [kv.decode()]))[0]))
        if info.verb not in ("update", "patch"):
            raise self._not_allowed()
        if info.verb == "update":
            body = await self.read_body(req, res, "scale")
        else:
            ct = req.content_type
            kind = PATCH_TYPES.get(ct)
            if kind is None or kind == "apply":
                raise errors.unsupported_media_type(ct)
            patch_doc = decode_document(await req.body(), "application/json")
            body = None
        precondition = ""
        if body is not None:
            precondition = str((body.get("metadata") or {}).get("resourceVersion") or "")

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            scale = body
            if scale is None:
                current = self.to_scale(res, old)
                scale = json_patch(current, patch_doc) if kind == "json" else merge_patch(current, patch_doc)
                if not isinstance(scale, dict):
                    raise errors.bad_request("the patch must result in an object")
                self._check_body("scale", scale)
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid(
                    "Scale", info.name,
                    [errors.field_cause("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
                    "autoscaling",
                )
            obj = _deep_copy(old)
            obj["metadata"].pop("resourceVersion", None)
            res.strategy.set_scale_replicas(obj, replicas)
            return obj

        # as "scale": field management records the change against the parent's spec.replicas with
        # subresource "scale" (upstream's ScaleHandler), and admission sees deployments/scale
        out, _ = await api.update_object(
            res, ns, info.name, mutate, precondition, user, _dry_run(req.query), req.query, "scale")
        return json_response(self.to_scale(res, out))

    # -- binding ------------------------------------------------------------------------

    async def _binding(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo) -> Response:
        return await self.bind(req, info, res, ns, user, res, "binding")

    async def bind(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo,
                   admitted_as: Resource, admitted_sub: str, body: dict[str, Any] | None = None) -> Response:
        """Bind pod `info.name` to the Binding's target node; admission sees the Binding as a
        creation of `admitted_as`/`admitted_sub` (pods/binding, or core/v1 bindings). `body`: the
        Binding when the caller read it already."""
        if info.verb != "create":
            raise self._not_allowed()
        api = self.server.api
        body = body if body is not None else await self.read_body(req, res, "binding")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != info.name:
            raise errors.bad_request("the name of the binding does not match the name on the URL")
        if meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        # upstream's BindingREST.Create: admission sees the creation of a Binding (mutating
        # webhooks may change it), then the pod is assigned without an admission of its own
        binding = {**body, "apiVersion": "v1", "kind": "Binding", "metadata": {**meta, "name": info.name, "namespace": ns}}
        dry_run = _dry_run(req.query)
        attrs = adm.Attributes(adm.CREATE, admitted_as, admitted_sub, ns, info.name, binding, None, user, dry_run,
                               req.query)
        await self.server.admission.admit(attrs)
        binding = attrs.obj if isinstance(attrs.obj, dict) else binding
        meta = binding.get("metadata") if isinstance(binding.get("metadata"), dict) else {}
        target = binding.get("target") if isinstance(binding.get("target"), dict) else {}
        node = target.get("name")
        if not node or not isinstance(node, str):
            raise errors.invalid("Binding", info.name, [errors.field_cause("target.name", "Required value", "FieldValueRequired")])
        if target.get("kind") not in (None, "", "Node"):
            raise errors.invalid(
                "Binding", info.name,
                [errors.field_cause("target.kind", f'Invalid value: "{target.get("kind")}": must be empty or \'Node\'')],
            )
        await self.server.admission.validate(attrs)

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            obj = _deep_copy(old)
            if meta.get("uid") and meta["uid"] != obj["metadata"].get("uid"):
                raise errors.conflict("pods", info.name, "Precondition failed: UID in precondition does not match")
            if obj["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", info.name, "pod is being deleted, cannot be assigned to a host")
            current = (obj.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict("pods", info.name, f"pod {info.name} is already assigned to node \"{current}\"")
            obj["spec"]["nodeName"] = node
            if meta.get("annotations"):
                obj["metadata"].setdefault("annotations", {}).update(meta["annotations"])
            status = obj.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now()})
            status["conditions"] = conds
            obj["metadata"].pop("resourceVersion", None)
            return obj

        await api.update_object(res, ns, info.name, mutate, "", user, dry_run, req.query, "binding", admit=False)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    # -- eviction (pods) -----------------------------------------------------------------

    async def _eviction(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo) -> Response:
        """policy/v1 Eviction: delete the pod unless a PodDisruptionBudget forbids it (429)."""
        if info.verb != "create":
            raise self._not_allowed()
        api = self.server.api
        body = await self.read_body(req, res, "eviction")
        if body.get("apiVersion") not in (None, "policy/v1", "policy/v1beta1"):
            raise errors.bad_request(f"expected a policy/v1 Eviction, got {body.get('apiVersion')}/{body.get('kind')}")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != info.name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        opts = body.get("deleteOptions") or {}
        if not isinstance(opts, dict):
            raise errors.bad_request("deleteOptions must be an object")
        if _dry_run(req.query):
            opts["dryRun"] = ["All"]
        # admission sees the Eviction (upstream's createValidation): NodeRestriction keeps a node
        # to its own pods, webhooks registered for pods/eviction are called
        eviction = {**body, "apiVersion": body.get("apiVersion") or "policy/v1", "kind": "Eviction",
                    "metadata": {**meta, "name": info.name, "namespace": ns}}
        attrs = adm.Attributes(adm.CREATE, res, "eviction", ns, info.name, eviction, None, user,
                               bool(opts.get("dryRun")), req.query)
        await self.server.admission.admit(attrs)
        await self.server.admission.validate(attrs)
        pod = (await api.read(res, ns, info.name)).decode()
        phase = (pod.get("status") or {}).get("phase")
        # Pods that aren't running count against no budget (upstream canIgnorePDB).
        if not (phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp")):
            await self._charge_disruption_budget(pod, ns, user, bool(opts.get("dryRun")))
        await api.delete_object(res, ns, info.name, opts, user, req.query)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    async def _charge_disruption_budget(self, pod: dict[str, Any], ns: str, user: UserInfo, dry_run: bool) -> None:
        from apimachinery.selectors import LabelSelectorError, selector_from_label_selector

        pdb_res = self.server.resource("policy", "poddisruptionbudgets")
        cache = self.server.cache_for("policy", "poddisruptionbudgets")
        await cache.sync_with_store()
        labels = pod["metadata"].get("labels") or {}
        matching = []
        for e in cache.list(Filter(ns)):
            pdb = orjson.loads(e.data)
            try:
                if selector_from_label_selector((pdb.get("spec") or {}).get("selector")).matches(labels):
                    matching.append(pdb)
            except LabelSelectorError:
                continue
        if not matching:
            return
        if len(matching) > 1:
            raise errors.StatusError(
                500, "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            )
        name = matching[0]["metadata"]["name"]
        pod_name = pod["metadata"]["name"]

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            pdb = _deep_copy(old)
            meta, status = pdb["metadata"], pdb.get("status") or {}
            if status.get("observedGeneration", 0) < meta.get("generation", 1):
                raise _too_many(name, "the disruption budget is still being processed by the server")
            allowed = status.get("disruptionsAllowed", 0)
            if allowed <= 0:
                raise _too_many(
                    name,
                    f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy pods and has "
                    f"{status.get('currentHealthy', 0)} currently",
                )
            disrupted = status.setdefault("disruptedPods", {})
            if len(disrupted) > 2000:
                raise _too_many(name, "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
            status["disruptionsAllowed"] = allowed - 1
            disrupted[pod_name] = now()
            pdb["status"] = status
            meta.pop("resourceVersion", None)
            return pdb

        await self.server.api.update_object(pdb_res, ns, name, mutate, "", user, dry_run, {}, "status")

    # -- finalize (namespaces) ----------------------------------------------------------

    async def _finalize(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo) -> Response:
        if info.verb != "update":
            raise self._not_allowed()
        api = self.server.api
        new = await api.read_object(req, res)
        api.check_type(res, new)
        finalizers = (new.get("spec") or {}).get("finalizers") or []
        precondition = str((new.get("metadata") or {}).get("resourceVersion") or "")

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            obj = _deep_copy(old)
            obj["metadata"].pop("resourceVersion", None)
            obj.setdefault("spec", {})["finalizers"] = finalizers
            return obj

        out, _ = await api.update_object(res, "", info.name, mutate, precondition, user, _dry_run(req.query), req.query, "finalize")
        return raw_json(orjson.dumps(out))

    # -- log, exec, attach, portforward (pods): proxied to the kubelet (apiserver/podproxy.py)

    async def _log(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo):
        return await self.server.podproxy.logs(req, info, ns)

    async def _exec(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo):
        return await self.server.podproxy.streaming_http(req, info, ns)

    _attach = _exec
    _portforward = _exec

    async def _proxy(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo):
        if res.group != "":
            raise errors.route_not_found("proxy")
        return await self.server.proxy.serve(req, info, res.plural, ns)

    # -- token (serviceaccounts) --------------------------------------------------------

    async def _token(self, req: Request, info: RequestInfo, res: Resource, ns: str, user: UserInfo) -> Response:
        from apiserver.tokenrequest import create_token

        return await create_token(self.server, req, info, res, ns, user)
