"""matchConditions of admission webhooks: CEL expressions over `object`, `oldObject`, `request`
and `authorizer` (apiserver.admission.celauthz), evaluated by apiserver.celengine (cel-python,
imported only when a webhook has conditions) with upstream's budget for match conditions.

As upstream's matchconditions.Matcher: any condition that is false skips the webhook; errors
(with none false) fail by the webhook's failurePolicy. Not supported: static type checking
(cel-python checks names only when evaluating).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apiserver.celengine import OUT_OF_BUDGET, Engine, OutOfBudget, Run

# upstream's RuntimeCELCostBudgetMatchConditions is a quarter of the per-object budget
MATCH_CONDITION_STEPS = 25_000


def _program(expr: str) -> Any:
    """A compiled program, or the compile error's text."""
    prog = Engine.get().compile(expr, authz=True)
    if prog is None:
        return "compilation failed: optional syntax (.? and [?]) is not supported"
    return prog


def compile_error(expr: str) -> str:
    """The compile error of a condition's expression ("" when it compiles)."""
    prog = _program(expr)
    return prog if isinstance(prog, str) else ""


@dataclass(slots=True)
class MatchResult:
    matches: bool
    error: str = ""
    failed_condition: str = ""


def evaluate(conditions: list[dict[str, Any]], obj: Any, old: Any, request: dict[str, Any],
             failure_policy: str, authorizer: Callable[[Any], Any] | None = None,
             params: Any = None) -> MatchResult:
    """Run a webhook's (or an admission policy's) conditions: false → no match; only errors →
    error (Fail) or no match (Ignore). `authorizer(types)` makes the `authorizer` variable
    (celauthz.variable); `params`: a policy's parameter object (JSON; None is null)."""
    engine = Engine.get()
    to_cel = engine.celpy.json_to_cel
    activation = {"object": to_cel(obj), "oldObject": to_cel(old), "request": to_cel(request),
                  "params": to_cel(params)}
    if authorizer is not None:
        activation["authorizer"] = authorizer(engine.types)
    run = Run(engine, MATCH_CONDITION_STEPS)
    errs: list[str] = []
    for cond in conditions:
        expr = str(cond.get("expression") or "")
        prog = _program(expr)
        if isinstance(prog, str):
            errs.append(f"expression '{expr}' resulted in error: {prog}")
            continue
        try:
            result = run.evaluate(prog, activation)
        except OutOfBudget:
            errs.append(OUT_OF_BUDGET)
            break
        except Exception as e:  # CELEvalError and cel-python's own faults alike
            result = e
        if isinstance(result, Exception):
            errs.append(f"expression '{expr}' resulted in error: {result.args[0] if result.args else result}")
            continue
        if isinstance(result, engine.types.BoolType) or isinstance(result, bool):
            if not bool(result):
                return MatchResult(False, failed_condition=str(cond.get("name") or ""))
            continue
        errs.append(f"expression '{expr}' resulted in error: must evaluate to bool")
    if errs:
        if failure_policy == "Ignore":
            return MatchResult(False)
        return MatchResult(False, "; ".join(errs) if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return MatchResult(True)
