"""The TokenRequest subresource: `POST serviceaccounts/<name>/token` (`kubectl create token`).

Issues a bound ServiceAccount token (upstream registry/core/serviceaccount/storage/token.go):
audiences default to the API server's own, lifetime to an hour (at least ten minutes),
optionally bound to a Pod, Secret or Node that must exist (with the given uid) and, for a
pod, run as this ServiceAccount. Tokens the kubelet requests for projected volumes (3607 s)
are extended to a year with a `warnafter`, as upstream's safe rollout does. Admission
runs on the TokenRequest (NodeRestriction limits kubelets to their own pods).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from apimachinery import errors
from apimachinery.meta import format_time, now
from apimachinery.validation import invalid_cause
from apiserver import admission as adm
from apiserver.authn.serviceaccount import EXTENDED_EXPIRATION, WARN_ONLY_EXPIRATION
from apiserver.http import Response, json_response
from apiserver.lookup import get_object

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.http import Request
    from apiserver.requestinfo import RequestInfo
    from apiserver.resources import Resource
    from apiserver.server import APIServer

API_VERSION = "authentication.k8s.io/v1"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
BINDABLE = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}

#: what a review or TokenRequest body may come as (kubectl sends protobuf)
def _invalid(field: str, value: Any, detail: str) -> errors.StatusError:
    return errors.invalid("TokenRequest", "", [invalid_cause(field, value, detail)], "authentication.k8s.io")


async def create_token(server: APIServer, req: Request, info: RequestInfo, res: Resource, ns: str,
                       user: UserInfo) -> Response:
    if info.verb != "create":
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    issuer = server.token_issuer
    if issuer is None:
        raise errors.route_not_found("token issuing is not configured")
    body = await server.api.read_body(req, res, "authentication.k8s.io", "v1", "TokenRequest")
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    audiences = [a for a in spec.get("audiences") or [] if isinstance(a, str)] or list(server.authn.api_audiences)
    expiration = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
    if expiration is None:
        expiration = DEFAULT_EXPIRATION
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        raise errors.bad_request("spec.expirationSeconds must be an integer")
    if expiration < MIN_EXPIRATION:
        raise _invalid("spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes")
    if expiration > MAX_EXPIRATION:
        raise _invalid("spec.expirationSeconds", expiration, "may not specify a duration larger than 2^32 seconds")
    name = info.name
    sa = await get_object(server, "", "serviceaccounts", ns, name)
    if sa is None:
        raise errors.not_found("serviceaccounts", name)

    pod = secret = node = None
    ref = spec.get("boundObjectRef")
    if ref is not None:
        if not isinstance(ref, dict):
            raise errors.bad_request("spec.boundObjectRef must be an object")
        kind = ref.get("kind")
        if ref.get("apiVersion", "v1") not in ("v1", "") or kind not in BINDABLE:
            raise errors.bad_request(f"cannot bind token to object of type {ref.get('apiVersion', 'v1')}, Kind={kind}")
        bound_name = ref.get("name") or ""
        bound = await get_object(server, "", BINDABLE[kind], "" if kind == "Node" else ns, bound_name)
        if bound is None:
            raise errors.not_found(BINDABLE[kind], bound_name)
        if kind == "Pod":
            pod = bound
            if (pod.get("spec") or {}).get("serviceAccountName") != name:
                raise errors.bad_request(
                    f'cannot bind token for serviceaccount "{name}" to pod running with different serviceaccount name.')
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name:
                node = await get_object(server, "", "nodes", "", node_name)
        elif kind == "Secret":
            secret = bound
        else:
            node = bound
        uid = bound["metadata"].get("uid")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(
                kind, bound_name,
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. "
                "The object might have been deleted and then recreated",
            )
        spec = {**spec, "boundObjectRef": {**ref, "apiVersion": "v1", "uid": uid}}
    spec = {**spec, "audiences": audiences, "expirationSeconds": expiration}
    request = {"kind": "TokenRequest", "apiVersion": API_VERSION,
               "metadata": {"name": name, "namespace": ns, "creationTimestamp": now()}, "spec": spec}

    dry_run = req.query.get("dryRun") == "All"
    attrs = adm.Attributes(adm.CREATE, res, "token", ns, name, request, None, user, dry_run, req.query)
    await server.admission.admit(attrs)
    await server.admission.validate(attrs)
    if dry_run:
        return json_response({**request, "status": {"token": "", "expirationTimestamp": None}}, 201)

    lifetime, warn_after = expiration, 0
    max_expiration = server.opts.service_account_max_token_expiration
    api_audiences = set(server.authn.api_audiences)
    if (pod is not None and server.opts.service_account_extend_token_expiration and expiration == WARN_ONLY_EXPIRATION
            and set(audiences) <= api_audiences):
        # kubelets' projected tokens: valid a year, reported stale after 3607 s (upstream's safe rollout)
        lifetime, warn_after = EXTENDED_EXPIRATION, WARN_ONLY_EXPIRATION
    elif max_expiration and lifetime > max_expiration:
        lifetime = max_expiration
        request["spec"]["expirationSeconds"] = lifetime
    issued = issuer.issue(sa, audiences, lifetime, pod=pod, secret=secret, node=node, warn_after=warn_after)
    expires = format_time(dt.datetime.fromtimestamp(issued.expiration, dt.UTC))
    return json_response({**request, "status": {"token": issued.token, "expirationTimestamp": expires}}, 201)
