"""Which kubeconfig and context minictl talks to, kubectl's way.

Precedence: ``--kubeconfig FILE``; else every file of ``$KUBECONFIG`` (``:``-separated), merged
the way kubectl merges them (the first file to set a value wins: current-context, and each
named cluster, user and context); else the default local cluster's admin kubeconfig or
``~/.kube/config`` (``certs.default_kubeconfig_path``). ``--context`` picks another context.

Loading one context into credentials is ``certs.load_kubeconfig``'s job; for a merged view
the merged document is handed to it through a private temporary file (relative paths made
absolute first, against the file that held them).
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from certs.kubeconfig import KubeconfigError, KubeconfigInfo, default_kubeconfig_path, load_kubeconfig

_PATH_KEYS = {"clusters": ("certificate-authority",), "users": ("client-certificate", "client-key", "tokenFile")}
_SECTIONS = ("clusters", "users", "contexts")


def kubeconfig_paths(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files that make up the configuration, highest precedence first."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if env:
        existing = [p for p in env if p.is_file()]
        return existing or env[:1]
    return [default_kubeconfig_path()]


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise KubeconfigError(f"kubeconfig {path} cannot be read: {e}") from e
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a Config object")
    return doc


def _absolutize(doc: dict[str, Any], base: Path) -> None:
    for section, keys in _PATH_KEYS.items():
        inner = section[:-1]
        for entry in doc.get(section) or []:
            body = (entry or {}).get(inner) or {}
            for key in keys:
                if body.get(key) and not Path(body[key]).expanduser().is_absolute():
                    body[key] = str((base / body[key]).resolve())


@dataclass
class KubeconfigSet:
    """The merged configuration of one or more kubeconfig files."""

    paths: list[Path]
    merged: dict[str, Any]
    # file that defines each context (use-context / set-context write there, like kubectl)
    origins: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def load(cls, explicit: str | os.PathLike[str] | None = None) -> KubeconfigSet:
        paths = kubeconfig_paths(explicit)
        if explicit and not paths[0].is_file():
            raise KubeconfigError(f"stat {paths[0]}: no such file or directory")
        merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                                  "clusters": [], "users": [], "contexts": [], "current-context": ""}
        origins: dict[str, Path] = {}
        seen: dict[str, set[str]] = {s: set() for s in _SECTIONS}
        for path in paths:
            if not path.is_file():
                continue
            doc = copy.deepcopy(_read(path))
            if len(paths) > 1:
                _absolutize(doc, path.resolve().parent)
            if not merged["current-context"] and doc.get("current-context"):
                merged["current-context"] = doc["current-context"]
            for section in _SECTIONS:
                for entry in doc.get(section) or []:
                    name = (entry or {}).get("name")
                    if name and name not in seen[section]:
                        seen[section].add(name)
                        merged[section].append(entry)
                        if section == "contexts":
                            origins[name] = path
            if doc.get("preferences") and not merged["preferences"]:
                merged["preferences"] = doc["preferences"]
        return cls(paths, merged, origins)

    @property
    def current_context(self) -> str:
        return self.merged.get("current-context") or ""

    def context_names(self) -> list[str]:
        return [c["name"] for c in self.merged["contexts"]]

    def info(self, context: str | None = None) -> KubeconfigInfo:
        """Credentials and server of `context` (default: the current context)."""
        if len(self.paths) == 1:
            if not self.paths[0].is_file():
                raise KubeconfigError(
                    f"no kubeconfig at {self.paths[0]}: start a cluster with `minictl cluster up`, "
                    "or pass --kubeconfig / set KUBECONFIG")
            return load_kubeconfig(self.paths[0], context)
        with tempfile.TemporaryDirectory(prefix="minictl-kubeconfig-") as tmp:
            merged_path = Path(tmp) / "merged.kubeconfig"
            merged_path.write_text(yaml.safe_dump(self.merged))
            merged_path.chmod(0o600)
            info = load_kubeconfig(merged_path, context)
        return KubeconfigInfo(**{**info.__dict__, "path": self.origins.get(info.context, self.paths[0])})

    def write_file_for(self, context: str | None) -> Path:
        """The file kubectl modifies for a change of `context` / current-context."""
        if context and context in self.origins:
            return self.origins[context]
        for path in self.paths:
            if path.is_file() and _read(path).get("current-context"):
                return path
        return self.paths[0]

    def set_current_context(self, context: str) -> Path:
        if context not in self.context_names():
            raise KubeconfigError(f'no context exists with the name: "{context}"')
        path = self.write_file_for(None)
        doc = _read(path) if path.is_file() else {"apiVersion": "v1", "kind": "Config"}
        doc["current-context"] = context
        _write(path, doc)
        self.merged["current-context"] = context
        return path

    def set_context_namespace(self, context: str, namespace: str) -> Path:
        path = self.write_file_for(context)
        doc = _read(path)
        for entry in doc.get("contexts") or []:
            if entry.get("name") == context:
                entry.setdefault("context", {})["namespace"] = namespace
                break
        else:
            raise KubeconfigError(f'no context exists with the name: "{context}"')
        _write(path, doc)
        return path

    def view(self, minify: bool = False, raw: bool = False, context: str | None = None) -> dict[str, Any]:
        """`kubectl config view`: the merged config, secrets redacted unless raw."""
        doc = copy.deepcopy(self.merged)
        if not doc.get("preferences"):
            doc.pop("preferences", None)  # kubectl leaves out what is empty
        if minify:
            name = context or self.current_context
            if not name:
                raise KubeconfigError("current-context must exist in order to minify")
            ctx = next((c for c in doc["contexts"] if c["name"] == name), None)
            if ctx is None:
                raise KubeconfigError(f'cannot locate context {name}')
            body = ctx.get("context") or {}
            doc["contexts"] = [ctx]
            doc["clusters"] = [c for c in doc["clusters"] if c["name"] == body.get("cluster")]
            doc["users"] = [u for u in doc["users"] if u["name"] == body.get("user")]
            doc["current-context"] = name
        if not raw:
            for section in ("clusters", "users"):
                for entry in doc[section]:
                    body = entry.get(section[:-1]) or {}
                    for key in list(body):
                        if key.endswith("-data"):
                            body[key] = "DATA+OMITTED"
                        elif key in ("token", "password"):
                            body[key] = "REDACTED"
        return doc


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


__all__ = ["KubeconfigError", "KubeconfigInfo", "KubeconfigSet", "kubeconfig_paths"]
