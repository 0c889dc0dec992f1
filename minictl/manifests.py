"""Reading objects from `-f` arguments: files, directories (`-R`), stdin (`-`), multi-document
YAML or JSON, `*List` kinds flattened. URLs are refused (minictl reads local files only)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


class ManifestError(ValueError):
    pass


class _Loader(yaml.SafeLoader):
    """YAML → JSON values as kubectl decodes them: timestamps stay strings, keys become strings."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _stringify_keys(v: Any) -> Any:
    if isinstance(v, dict):
        return {(k if isinstance(k, str) else json.dumps(k) if isinstance(k, bool) else str(k)): _stringify_keys(x)
                for k, x in v.items()}
    if isinstance(v, list):
        return [_stringify_keys(x) for x in v]
    return v


@dataclass
class Manifest:
    obj: dict[str, Any]
    source: str  # the file name as given ("STDIN" for -)


def parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Objects in a YAML or JSON text (several YAML documents, or a JSON object/stream)."""
    stripped = text.lstrip()
    docs: list[Any]
    if stripped.startswith(("{", "[")):
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError:
            docs = _yaml_docs(text, source)
    else:
        docs = _yaml_docs(text, source)
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, list):
            raise ManifestError(f'error: unable to decode "{source}": a manifest must be an object, not a list')
        if not isinstance(doc, dict):
            raise ManifestError(f'error: unable to decode "{source}": expected an object, got {type(doc).__name__}')
        out.extend(_flatten(_stringify_keys(doc), source))
    return out


def _yaml_docs(text: str, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as e:
        raise ManifestError(f'error: error parsing {source}: {e}') from e


def _flatten(doc: dict[str, Any], source: str) -> list[dict[str, Any]]:
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        out = []
        for item in doc["items"]:
            if isinstance(item, dict):
                out.extend(_flatten(item, source))
        return out
    if not kind:
        raise ManifestError(f"error: unable to decode \"{source}\": Object 'Kind' is missing in '{json.dumps(doc)}'")
    if not doc.get("apiVersion"):
        raise ManifestError(f"error: unable to decode \"{source}\": Object 'apiVersion' is missing in '{json.dumps(doc)}'")
    return [doc]


def _files(arg: str, recursive: bool) -> list[Path]:
    path = Path(arg)
    if path.is_dir():
        pattern = path.rglob("*") if recursive else path.glob("*")
        return sorted(p for p in pattern if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    if not path.exists():
        raise ManifestError(f'error: the path "{arg}" does not exist')
    return [path]


def read_manifests(filenames: list[str], recursive: bool = False) -> list[Manifest]:
    out: list[Manifest] = []
    for arg in filenames:
        if arg.startswith(("http://", "https://")):
            raise ManifestError(f"error: {arg}: minictl reads local files only (download it first)")
        if arg == "-":
            out += [Manifest(o, "STDIN") for o in parse_documents(sys.stdin.read(), "STDIN")]
            continue
        for path in _files(arg, recursive):
            out += [Manifest(o, str(path) if path != Path(arg) else arg)
                    for o in parse_documents(path.read_text(), str(path))]
    if not out:
        raise ManifestError("error: no objects passed to apply" if filenames else "error: must specify one of -f and -k")
    return out
