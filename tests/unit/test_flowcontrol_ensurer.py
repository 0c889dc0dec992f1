"""How the apiserver keeps upstream's APF configuration objects (apiserver/flowcontrol/ensurer.py)."""

from __future__ import annotations

import copy

from apiserver.flowcontrol import config
from apiserver.flowcontrol.ensurer import parse_bool, revise


def test_parse_bool_is_gos() -> None:
    assert [parse_bool(v) for v in ("true", "T", "1", "FALSE", "f", "0", "yes", "", None)] == [
        True, True, True, False, False, False, None, None, None]


def test_ensurer_revisions() -> None:
    wanted = config.SUGGESTED_PRIORITY_LEVELS[0]
    current = copy.deepcopy(wanted)
    current["metadata"].update(resourceVersion="5", generation=2)
    assert revise("prioritylevelconfigurations", current, wanted, False) is None
    current["spec"]["limited"]["nominalConcurrencyShares"] = 1
    fixed = revise("prioritylevelconfigurations", current, wanted, False)
    assert fixed["spec"] == wanted["spec"] and "resourceVersion" not in fixed["metadata"]
    current["metadata"]["annotations"][config.AUTO_UPDATE_ANNOTATION] = "false"  # the admin's now
    assert revise("prioritylevelconfigurations", current, wanted, False) is None
    del current["metadata"]["annotations"][config.AUTO_UPDATE_ANNOTATION]  # changed (generation 2): hands off
    fixed = revise("prioritylevelconfigurations", current, wanted, False)
    assert fixed["metadata"]["annotations"][config.AUTO_UPDATE_ANNOTATION] == "false"
    assert fixed["spec"] == current["spec"]
    mandatory = copy.deepcopy(config.MANDATORY_PRIORITY_LEVELS[1])
    mandatory["metadata"]["annotations"][config.AUTO_UPDATE_ANNOTATION] = "false"
    mandatory["spec"]["exempt"]["nominalConcurrencyShares"] = 7
    fixed = revise("prioritylevelconfigurations", mandatory, config.MANDATORY_PRIORITY_LEVELS[1], True)
    assert fixed["metadata"]["annotations"][config.AUTO_UPDATE_ANNOTATION] == "true"
    assert fixed["spec"]["exempt"]["nominalConcurrencyShares"] == 7  # spec.exempt stays the admin's
