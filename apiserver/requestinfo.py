"""Turn a request path and method into what authorization and the handler work on.

Mirrors upstream's RequestInfoFactory: `/api/v1/namespaces/ns/pods/name/status` →
verb, API group/version, namespace, resource, name, subresource.
"""

from __future__ import annotations

from dataclasses import dataclass

from apimachinery import errors
from apiserver.http import query_bool

#: Subresources of namespaces: `/api/v1/namespaces/<name>/<sub>` is a subresource, not a
#: namespaced resource list.
NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(slots=True)
class RequestInfo:
    is_resource: bool
    verb: str  # get list watch create update patch delete deletecollection (or http verb)
    path: str
    api_prefix: str = ""  # "api" | "apis"
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()


def _split(path: str) -> list[str]:
    return [p for p in path.strip("/").split("/") if p != ""]


def parse(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    parts = _split(path)
    http_verb = method.lower()
    if len(parts) < 2 or parts[0] not in ("api", "apis"):
        return RequestInfo(False, http_verb, path)
    prefix = parts[0]
    if prefix == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return RequestInfo(False, http_verb, path, prefix, parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    info = RequestInfo(True, "", path, prefix, group, version)
    if not rest:
        info.is_resource = False
        info.verb = http_verb
        return info

    watch_path = False
    if rest[0] == "watch":  # deprecated /watch/ paths, still served upstream
        watch_path = True
        rest = rest[1:]

    if len(rest) >= 2 and rest[0] == "namespaces":
        if len(rest) == 2 or (len(rest) == 3 and group == "" and rest[2] in NAMESPACE_SUBRESOURCES):
            # the namespace object itself (or its subresource)
            info.resource = "namespaces"
            info.name = rest[1]
            info.namespace = rest[1]
            if len(rest) == 3:
                info.subresource = rest[2]
            rest = []
        else:
            info.namespace = rest[1]
            rest = rest[2:]
    if rest:
        info.resource = rest[0]
        if len(rest) >= 2:
            info.name = rest[1]
        if len(rest) >= 3:
            info.subresource = rest[2]
        if len(rest) > 3:
            # e.g. nodes/<name>/proxy/<path...>; keep the tail for proxies
            info.parts = tuple(rest[3:])
    if info.resource == "namespaces" and not info.subresource:
        info.namespace = info.name if info.name else ""

    if http_verb == "get":
        # ?watch only turns a list into a watch; a named GET stays a get (upstream's RequestInfo
        # looks at the query only when there is no name). /watch/<...>/<name> is a named watch.
        if watch_path or (not info.name and query_bool(query.get("watch"))):
            info.verb = "watch"
        elif info.name:
            info.verb = "get"
        else:
            info.verb = "list"
    elif http_verb == "post":
        info.verb = "create"
    elif http_verb == "put":
        info.verb = "update"
    elif http_verb == "patch":
        info.verb = "patch"
    elif http_verb == "delete":
        info.verb = "delete" if info.name else "deletecollection"
    elif http_verb in ("head", "options"):
        info.verb = http_verb
    else:
        raise errors.method_not_allowed(f"the server does not allow this method on the requested resource ({method})")
    return info


#: upstream's long-running requests (genericapiserver's BasicLongRunningRequestCheck): watches and
#: proxies, and the streaming subresources
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})


def is_long_running(info: RequestInfo) -> bool:
    return info.verb in LONG_RUNNING_VERBS or (info.is_resource and info.subresource in LONG_RUNNING_SUBRESOURCES)
