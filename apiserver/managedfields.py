"""metadata.managedFields and server-side apply, with structured-merge-diff's semantics.

A field set is a set of *paths*: tuples of FieldsV1 tokens — ``f:<field>`` for a field of an
object or map, ``k:{"name":"c"}`` for an item of an associative list (keyed by its merge keys),
``v:"x"`` for an item of a set, and ``.`` for "the list item itself". Sets convert to and from
FieldsV1 (the nested-dict trie upstream stores) only at the edges. Which lists are associative,
sets or atomic comes from the same patch metadata as strategic merge patch
(apimachinery.strategic), so SSA, SMP and the OpenAPI extensions agree.

Every write is tracked: an Update by manager M takes ownership of the fields it changed (and
takes them from everyone else); an Apply sets exactly the applied fields as M's, conflicts with
other owners of fields whose values it changes (409 unless force), and removes fields M applied
before but no longer does when nobody else owns them.

Writes through a subresource are told apart by the entry's `subresource`: /status writes own status
fields; a /scale write owns the parent's spec.replicas (upstream's ScaleHandler mapping). Entries
are kept in upstream's order (appliers first, then oldest first).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from typing import Any

import orjson

from apimachinery import errors
from apimachinery.meta import now, parse_time
from apimachinery.strategic import schema_for

Path = tuple[str, ...]

#: Fields never tracked (upstream's stripMetaManager).
STRIPPED_META = frozenset({
    "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
    "managedFields", "resourceVersion",
})

#: The manager of the request being served (set by the request pipeline).
REQUEST_MANAGER: contextvars.ContextVar[str] = contextvars.ContextVar("field_manager", default="kube-apiserver")


class _Applying:
    """An Apply in progress: the managedFields it computed for the object `uid`, which on_update
    puts back after the strategy ran (a /status write keeps the stored metadata, and with it the
    stored managedFields)."""

    __slots__ = ("managed", "uid")

    def __init__(self) -> None:
        self.uid: str | None = None
        self.managed: list[dict[str, Any]] | None = None


#: Set while an Apply is being written, so the generic update path does not track it again.
_APPLYING: contextvars.ContextVar[_Applying | None] = contextvars.ContextVar("applying", default=None)

#: The parent's field a Scale's spec.replicas stands for (upstream's ResourcePathMappings; every
#: kind served with /scale here keeps it at spec.replicas).
REPLICAS: Path = ("f:spec", "f:replicas")

MAX_MANAGER_LEN = 128


def manager_for(query: dict[str, str], user_agent: str) -> str:
    """`fieldManager` if given and not empty, else the user agent's product (upstream's
    managerOrUserAgent: the prefix before '/')."""
    m = query.get("fieldManager")
    if m:
        if len(m) > MAX_MANAGER_LEN or not m.isprintable():
            raise errors.invalid(
                "", "", [errors.field_cause("fieldManager", f"Invalid value: {m!r}: must be between 1 and 128 printable characters")]
            )
        return m
    return (user_agent.split("/", 1)[0] or "unknown")[:MAX_MANAGER_LEN]


# -- list semantics ---------------------------------------------------------------------------

#: list-map keys where upstream lists more keys than the patch merge key
_EXTRA_KEYS = {"containerPort": ("containerPort", "protocol"), "port": ("port", "protocol")}
_KEY_DEFAULTS = {"protocol": "TCP"}


def _list_kind(node: Any) -> tuple[str, tuple[str, ...]]:
    """("map", keys) for associative lists, ("set", ()) for merged primitive lists, else atomic."""
    if node is None:
        return "atomic", ()
    key = node.merge_key
    if key:
        return "map", _EXTRA_KEYS.get(key, (key,))
    if node.patch_strategy and "merge" in node.patch_strategy:
        return "set", ()
    return "atomic", ()


def _key_of(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    ident = {k: item.get(k, _KEY_DEFAULTS.get(k)) for k in keys}
    return "k:" + orjson.dumps(ident, option=orjson.OPT_SORT_KEYS).decode()


def _value_token(v: Any) -> str:
    return "v:" + orjson.dumps(v).decode()


# -- flattening: object → {path: leaf value} ----------------------------------------------------

_ITEM = object()  # the value recorded for "." (an item's existence)


def _flatten_map(d: dict[str, Any], node: Any, prefix: Path, out: dict[Path, Any]) -> None:
    for k, v in d.items():
        if v is None:
            continue
        _flatten_value(v, node.field(k) if node is not None else None, (*prefix, "f:" + k), out)


def _flatten_value(v: Any, node: Any, p: Path, out: dict[Path, Any]) -> None:
    if isinstance(v, dict):
        if v:
            _flatten_map(v, node, p, out)
        else:
            out[p] = v
    elif isinstance(v, list):
        kind, keys = _list_kind(node)
        if kind == "map" and all(isinstance(i, dict) for i in v):
            for item in v:
                ip = (*p, _key_of(item, keys))
                out[(*ip, ".")] = _ITEM
                _flatten_map(item, node, ip, out)
        elif kind == "set" and not any(isinstance(i, (dict, list)) for i in v):
            for item in v:
                out[(*p, _value_token(item))] = item
        else:
            out[p] = v
    else:
        out[p] = v


def flatten(obj: dict[str, Any], schema: Any, subresource: str, has_status: bool) -> dict[Path, Any]:
    """The tracked fields of `obj` with their values (only status for /status writes)."""
    out: dict[Path, Any] = {}
    for k, v in obj.items():
        if k in ("apiVersion", "kind") or v is None:
            continue
        if subresource == "status" and k != "status":
            continue
        if subresource != "status" and has_status and k == "status":
            continue
        child = schema.field(k) if schema is not None else None
        if k == "metadata" and isinstance(v, dict):
            _flatten_map({mk: mv for mk, mv in v.items() if mk not in STRIPPED_META}, child, ("f:metadata",), out)
        else:
            _flatten_value(v, child, ("f:" + k,), out)
    return out


# -- FieldsV1 <-> path sets ---------------------------------------------------------------------


def decode_fields(fields: dict[str, Any] | None, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for tok, sub in (fields or {}).items():
        p = (*prefix, tok)
        if tok == "." or not sub:
            out.add(p)
        else:
            out |= decode_fields(sub, p)
    return out


def encode_fields(paths: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in sorted(paths):
        node = root
        for tok in p:
            node = node.setdefault(tok, {})
    return root


def path_string(p: Path) -> str:
    """fieldpath.Path.String(): `.spec.containers[name="c"].image`, `.metadata.finalizers[="x"]`."""
    out = []
    for tok in p:
        if tok == ".":
            continue
        kind, _, rest = tok.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            fields = orjson.loads(rest)
            out.append("[" + ",".join(f"{k}={orjson.dumps(v).decode()}" for k, v in fields.items()) + "]")
        elif kind == "v":
            out.append(f"[={rest}]")
        elif kind == "i":
            out.append(f"[{rest}]")
    return "".join(out)


# -- managers -------------------------------------------------------------------------------------


class Entry:
    __slots__ = ("api_version", "manager", "operation", "paths", "subresource", "time")

    def __init__(self, manager: str, operation: str, api_version: str, subresource: str, paths: set[Path],
                 time: str | None) -> None:
        self.manager, self.operation, self.api_version = manager, operation, api_version
        self.subresource, self.paths, self.time = subresource, paths, time

    @classmethod
    def load(cls, d: dict[str, Any]) -> Entry:
        return cls(d.get("manager", ""), d.get("operation", "Update"), d.get("apiVersion", ""),
                   d.get("subresource", ""), decode_fields(d.get("fieldsV1")), d.get("time"))

    def dump(self) -> dict[str, Any]:
        d: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            d["time"] = self.time
        d["fieldsType"] = "FieldsV1"
        d["fieldsV1"] = encode_fields(self.paths)
        if self.subresource:
            d["subresource"] = self.subresource
        return d

    def same_owner(self, manager: str, operation: str, subresource: str) -> bool:
        return (self.manager, self.operation, self.subresource) == (manager, operation, subresource)

    def describe(self) -> str:
        """printManager: `"kubectl" with subresource "scale" using apps/v1` for updates. Upstream
        prints it from the manager's identifier, which never carries the time."""
        s = orjson.dumps(self.manager).decode()
        if self.subresource:
            s += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            s += f" using {self.api_version}"
        return s


def _load_entries(meta: dict[str, Any]) -> list[Entry]:
    raw = meta.get("managedFields") or []
    if not isinstance(raw, list):
        raise errors.bad_request("metadata.managedFields must be a list")
    entries = []
    for d in raw:
        if not isinstance(d, dict):
            raise errors.bad_request("metadata.managedFields entries must be objects")
        if d:  # [{}] is the documented way to reset managedFields
            entries.append(Entry.load(d))
    return entries


def _epoch(t: Any) -> int:
    """An entry's time in seconds for ordering; absent or unreadable counts as 0, as upstream's nil."""
    try:
        return int(parse_time(t).timestamp()) if t else 0
    except (ValueError, TypeError, AttributeError):
        return 0


def _order(e: Entry) -> tuple[str, int, str, str, str]:
    """Upstream's sortEncodedManagedFields: appliers first, then the oldest (no time first), then
    by manager, apiVersion and subresource."""
    return e.operation, _epoch(e.time), e.manager, e.api_version, e.subresource


def _store(meta: dict[str, Any], entries: list[Entry]) -> None:
    if len(entries) > 1:  # a single manager (most writes) needs no ordering, nor its time parsed
        entries = sorted(entries, key=_order)
    kept = [e.dump() for e in entries if e.paths]
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


# -- removing a path from an object ----------------------------------------------------------


def _remove(obj: Any, p: Path, schema: Any) -> None:
    """Delete the field, list item or set value `p` names (no-op when already gone)."""
    if p and p[-1] == ".":
        p = p[:-1]
    cur, node = obj, schema
    for i, tok in enumerate(p):
        last = i == len(p) - 1
        kind, _, rest = tok.partition(":")
        if kind == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return
            if last:
                del cur[rest]
                return
            cur, node = cur[rest], node.field(rest) if node is not None else None
        elif kind == "k":
            if not isinstance(cur, list):
                return
            _, keys = _list_kind(node)
            idx = next((j for j, it in enumerate(cur) if isinstance(it, dict) and _key_of(it, keys) == tok), None)
            if idx is None:
                return
            if last:
                del cur[idx]
                return
            cur = cur[idx]
        elif kind == "v":
            if isinstance(cur, list) and last:
                value = orjson.loads(rest)
                if value in cur:
                    cur.remove(value)
            return
        else:
            return


# -- merging an applied configuration into the live object ------------------------------------


def _merge(live: Any, cfg: Any, node: Any) -> Any:
    if isinstance(live, dict) and isinstance(cfg, dict):
        for k, v in cfg.items():
            if v is None:
                live.pop(k, None)
                continue
            child = node.field(k) if node is not None else None
            live[k] = _merge(live[k], v, child) if k in live else _copy(v)
        return live
    if isinstance(live, list) and isinstance(cfg, list):
        kind, keys = _list_kind(node)
        if kind == "map" and all(isinstance(i, dict) for i in live + cfg):
            index = {_key_of(it, keys): it for it in live}
            for item in cfg:
                existing = index.get(_key_of(item, keys))
                if existing is None:
                    live.append(_copy(item))
                else:
                    _merge(existing, item, node)
            return live
        if kind == "set":
            for item in cfg:
                if item not in live:
                    live.append(item)
            return live
    return _copy(cfg)


def _copy(v: Any) -> Any:
    return orjson.loads(orjson.dumps(v))


def _conflict_error(conflicts: list[tuple[Path, Entry]]) -> errors.StatusError:
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.describe()}", "field": path_string(p)}
              for p, e in conflicts]
    if len(conflicts) == 1:
        p, e = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {e.describe()}: {path_string(p)}"
    else:
        by: dict[str, list[str]] = {}
        for p, e in conflicts:
            by.setdefault(e.describe(), []).append(path_string(p))
        lines = []
        for who in sorted(by):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {p}" for p in by[who]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.StatusError(409, "Conflict", message, {"causes": causes})


# -- the tracker the handler calls ----------------------------------------------------------------


class ManagedFields:
    def _schema(self, obj: dict[str, Any]) -> Any:
        return schema_for(obj.get("apiVersion", ""), obj.get("kind", ""))

    def on_create(self, obj: dict[str, Any], user: Any, query: dict[str, str], has_status: bool = False) -> None:
        meta = obj["metadata"]
        if _APPLYING.get() is not None:
            return
        paths = set(flatten(obj, self._schema(obj), "", has_status))
        _store(meta, [Entry(REQUEST_MANAGER.get(), "Update", obj.get("apiVersion", ""), "", paths, now())])

    def on_update(self, obj: dict[str, Any], old: dict[str, Any], user: Any, query: dict[str, str], sub: str,
                  has_status: bool = False) -> None:
        meta, old_meta = obj["metadata"], old["metadata"]
        applying = _APPLYING.get()
        if applying is not None and applying.uid == old_meta.get("uid"):
            # the Apply computed them; put them back where the strategy (a /status write) reset them
            if applying.managed:
                meta["managedFields"] = applying.managed
            else:
                meta.pop("managedFields", None)
            return
        if sub == "scale":
            self._on_scale(obj, old)
            return
        given = meta.get("managedFields")
        # Writes through a subresource never set managedFields (upstream's decodeLiveOrNew): the
        # stored ones are the starting point whatever the body says.
        from_body = not sub and given is not None and given != old_meta.get("managedFields")
        entries = _load_entries(meta if from_body else old_meta)
        schema = self._schema(obj)
        track = "status" if sub == "status" else ""
        before = flatten(old, schema, track, has_status)
        after = flatten(obj, schema, track, has_status)
        changed = {p for p, v in after.items() if before.get(p, _MISSING) != v}
        removed = before.keys() - after.keys()
        if not changed and not removed and not from_body:
            _keep_stored(meta, old_meta)
            return
        manager = REQUEST_MANAGER.get()
        mine = None
        for e in entries:
            if e.same_owner(manager, "Update", track) and e.api_version == obj.get("apiVersion"):
                mine = e
            else:
                e.paths -= changed
            e.paths -= removed
        if changed:
            if mine is None:
                mine = Entry(manager, "Update", obj.get("apiVersion", ""), track, set(), None)
                entries.append(mine)
            mine.paths |= changed
            mine.time = now()
        _store(meta, entries)

    def _on_scale(self, obj: dict[str, Any], old: dict[str, Any]) -> None:
        """A write through /scale, as upstream's ScaleHandler maps it: the Scale's spec.replicas is
        the parent's spec.replicas. The writer takes it from every other entry and owns it in an
        entry of its own with subresource "scale", the parent's apiVersion and no time (upstream's
        ToParent takes the time from a parent entry of that identity, which never exists)."""
        meta, old_meta = obj["metadata"], old["metadata"]
        entries = _load_entries(old_meta)
        replicas = (obj.get("spec") or {}).get("replicas", _MISSING)
        # Upstream tracks nothing when no entry owns spec.replicas: the Scale it builds then has no
        # managedFields, and an object without them is not tracked (skipNonAppliedManager).
        if replicas == (old.get("spec") or {}).get("replicas", _MISSING) or not any(REPLICAS in e.paths for e in entries):
            _keep_stored(meta, old_meta)
            return
        manager = REQUEST_MANAGER.get()
        for e in entries:
            e.paths.discard(REPLICAS)
        mine = next((e for e in entries if e.same_owner(manager, "Update", "scale")), None)
        if mine is None:
            mine = Entry(manager, "Update", obj.get("apiVersion", ""), "scale", set(), None)
            entries.append(mine)
        mine.paths, mine.time, mine.api_version = {REPLICAS}, None, obj.get("apiVersion", "")
        _store(meta, entries)

    async def apply(self, api: Any, req: Any, res: Any, ns: str, name: str, user: Any, subresource: str,
                    body: bytes, dry_run: bool) -> tuple[dict[str, Any], list, int]:
        """Server-side apply → (object, warnings, 201 when it created the object else 200)."""
        from apiserver.http import decode_document

        if not req.query.get("fieldManager"):
            # upstream's ValidatePatchOptions
            raise errors.invalid("PatchOptions", "", [errors.field_cause(
                "fieldManager", "Required value: is required for apply patch", "FieldValueRequired")], "meta.k8s.io")
        manager = REQUEST_MANAGER.get()
        force = req.query.get("force", "").lower() in ("true", "1")
        cfg = decode_document(body, "application/apply-patch+yaml")
        if not isinstance(cfg, dict):
            raise errors.bad_request("the applied configuration must be an object")
        if cfg.get("apiVersion") != res.api_version or cfg.get("kind") != res.kind:
            raise errors.bad_request(
                f"the API version and kind in the applied configuration ({cfg.get('apiVersion')}, {cfg.get('kind')}) "
                f"must be {res.api_version}, {res.kind}"
            )
        meta = cfg.get("metadata")
        # upstream's structured merge manager refuses any list here, even an empty one (only null passes)
        if isinstance(meta, dict) and meta.get("managedFields") is not None:
            raise errors.bad_request("metadata.managedFields must be nil")
        if not isinstance(meta, dict) or meta.get("name", name) != name:
            raise errors.bad_request("metadata.name in the applied configuration must match the name in the URL")
        if res.namespaced and meta.get("namespace", ns) != ns:
            raise errors.bad_request("the namespace of the applied configuration does not match the request")
        meta["name"] = name
        if res.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        for f in STRIPPED_META - {"name", "namespace"}:
            meta.pop(f, None)
        warnings = api.server.fields.prune(res, cfg, req.query.get("fieldValidation", ""), patched=True)
        cfg = res.strategy.to_storage(res, cfg)
        schema = schema_for(res.api_version, res.kind)
        strategy = res.strategy
        track = "status" if subresource == "status" else ""
        applied = flatten(cfg, schema, track, strategy.has_status)
        applying = _Applying()

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            live = _copy(old)
            live["metadata"].pop("resourceVersion", None)
            entries = _load_entries(live["metadata"])
            mine = next((e for e in entries if e.same_owner(manager, "Apply", track)), None)
            others = [e for e in entries if e is not mine]
            current = flatten(live, schema, track, strategy.has_status)
            conflicts = []
            for p, v in applied.items():
                if v is _ITEM or current.get(p, _MISSING) in (_MISSING, v):
                    continue
                conflicts += [(p, e) for e in others if p in e.paths]
            if conflicts and not force:
                raise _conflict_error(conflicts)
            for p, e in conflicts:
                e.paths.discard(p)
            merged = _merge(live, cfg, schema)
            previously = mine.paths if mine is not None else set()
            # whole list items first (their key fields identify them), then fields, deepest first
            for p in sorted(previously - applied.keys(), key=lambda p: (p[-1] != ".", -len(p))):
                if not any(p in e.paths for e in others):
                    _remove(merged, p, schema)
            # As structured-merge-diff: the applier's time moves only when the merge changed the object.
            # (`live` is the stored object without resourceVersion: compare with that, not a second copy)
            touched = merged != {**old, "metadata": {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}}
            # What the strategy will store: a /status write keeps everything but status (and the
            # writable metadata); a write of the object keeps the stored status.
            if track == "status":
                merged = _copy(strategy.prepare_for_status_update(merged, old))
                merged["metadata"].pop("resourceVersion", None)
            elif strategy.has_status:
                merged.pop("status", None)
                if "status" in old:
                    merged["status"] = _copy(old["status"])
            # every field the stored object keeps, the part this write does not touch included
            present = flatten(merged, schema, "", False).keys()
            if mine is None:
                mine = Entry(manager, "Apply", res.api_version, track, set(), None)
                entries.append(mine)
            mine.paths = set(applied)
            if touched:
                mine.time = now()
            mine.api_version = res.api_version
            for e in entries:
                e.paths &= present
            _store(merged["metadata"], entries)
            applying.uid = old["metadata"].get("uid")
            applying.managed = merged["metadata"].get("managedFields")
            return merged

        token = _APPLYING.set(applying)
        code = 200
        try:
            try:
                out, _ = await api.update_object(res, ns, name, mutate, "", user, dry_run, req.query, subresource)
            except errors.StatusError as e:
                if e.code != 404 or subresource:
                    raise
                # Apply creates what does not exist yet.
                obj = _copy(cfg)
                obj["metadata"]["managedFields"] = [
                    Entry(manager, "Apply", res.api_version, "", set(applied), now()).dump()
                ]
                out = await api.create_object(res, ns, obj, user, dry_run, req.query)
                code = 201  # as upstream's patch handler answers a create
        finally:
            _APPLYING.reset(token)
        return out, warnings, code


def _keep_stored(meta: dict[str, Any], old_meta: dict[str, Any]) -> None:
    """Nothing tracked changed: the stored managedFields stay as they are."""
    if "managedFields" in old_meta:
        meta["managedFields"] = old_meta["managedFields"]
    else:
        meta.pop("managedFields", None)


_MISSING = object()
