"""`--admission-control-config-file`: upstream's AdmissionConfiguration (apiserver.config.k8s.io/v1).

```yaml
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration: {apiVersion: pod-security.admission.config.k8s.io/v1, kind: PodSecurityConfiguration, ...}
- name: Other
  path: other.yaml          # relative paths are relative to this file
```

Each plugin entry carries its configuration inline or in a file of its own. Only PodSecurity
reads one here; the apiserver logs that the others' entries are ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

API_VERSIONS = ("apiserver.config.k8s.io/v1", "apiserver.k8s.io/v1alpha1")
#: plugins that read their section of the file
CONFIGURABLE = ("PodSecurity",)


class AdmissionConfigError(ValueError):
    pass


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise AdmissionConfigError(f"unable to read admission control configuration from {str(path)!r} "
                                   f"[{e.strerror or e}]") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise AdmissionConfigError(f"failed decoding {str(path)!r}: {e}") from None


def load_admission_config(path: str | Path) -> dict[str, Any]:
    """Plugin name → its configuration object (decoded YAML/JSON) from the file."""
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or doc.get("kind") != "AdmissionConfiguration" or doc.get("apiVersion") not in API_VERSIONS:
        raise AdmissionConfigError(f"{path}: want kind AdmissionConfiguration, apiVersion one of {', '.join(API_VERSIONS)}")
    plugins = doc.get("plugins") or []
    if not isinstance(plugins, list):
        raise AdmissionConfigError(f"{path}: plugins must be a list")
    out: dict[str, Any] = {}
    for i, entry in enumerate(plugins):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise AdmissionConfigError(f"{path}: plugins[{i}].name is required")
        name = entry["name"]
        if entry.get("configuration") is not None:
            config = entry["configuration"]
        elif entry.get("path"):
            p = Path(str(entry["path"]))
            config = _read_yaml(p if p.is_absolute() else path.parent / p)
        else:
            continue
        if name not in CONFIGURABLE:
            log.warning("admission configuration for plugin %s is ignored: only %s read theirs here",
                        name, ", ".join(CONFIGURABLE))
        out[name] = config
    return out
