"""matchConditions of admission webhooks: CEL expressions over `object`, `oldObject` and
`request`, evaluated with cel-python (imported only when a webhook has conditions).

As upstream's matchconditions.Matcher: any condition that is false skips the webhook; errors
(with none false) fail by the webhook's failurePolicy. Not supported: the `authorizer`
variable and static type checking (cel-python checks names only when evaluating).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class _Env:
    _instance: _Env | None = None

    def __init__(self) -> None:
        import celpy

        self.celpy = celpy
        self.env = celpy.Environment()
        self.programs: dict[str, Any] = {}

    @classmethod
    def get(cls) -> _Env:
        if cls._instance is None:
            cls._instance = _Env()
        return cls._instance

    def program(self, expr: str) -> Any:
        """A compiled program, or the compile error's text."""
        prog = self.programs.get(expr)
        if prog is None:
            try:
                prog = self.env.program(self.env.compile(expr))
            except self.celpy.CELParseError as e:
                lines = str(e).strip().splitlines()
                prog = f"compilation failed: ERROR: <input>: Syntax error: {lines[0] if lines else e}"
            except Exception as e:  # cel-python's own faults on odd input: a compile error, never a 500
                prog = f"compilation failed: {type(e).__name__}: {e}"
            if len(self.programs) > 4096:
                self.programs.clear()
            self.programs[expr] = prog
        return prog


def compile_error(expr: str) -> str:
    """The compile error of a condition's expression ("" when it compiles)."""
    prog = _Env.get().program(expr)
    return prog if isinstance(prog, str) else ""


@dataclass(slots=True)
class MatchResult:
    matches: bool
    error: str = ""
    failed_condition: str = ""


def evaluate(conditions: list[dict[str, Any]], obj: Any, old: Any, request: dict[str, Any],
             failure_policy: str) -> MatchResult:
    """Run a webhook's conditions: false → no match; only errors → error (Fail) or no match (Ignore)."""
    env = _Env.get()
    to_cel = env.celpy.json_to_cel
    activation = {"object": to_cel(obj), "oldObject": to_cel(old), "request": to_cel(request)}
    errs: list[str] = []
    for cond in conditions:
        expr = str(cond.get("expression") or "")
        prog = env.program(expr)
        if isinstance(prog, str):
            errs.append(f"expression '{expr}' resulted in error: {prog}")
            continue
        try:
            result = prog.evaluate(activation)
        except Exception as e:  # CELEvalError and cel-python's own faults alike
            result = e
        if isinstance(result, Exception):
            errs.append(f"expression '{expr}' resulted in error: {result.args[0] if result.args else result}")
            continue
        if isinstance(result, env.celpy.celtypes.BoolType) or isinstance(result, bool):
            if not bool(result):
                return MatchResult(False, failed_condition=str(cond.get("name") or ""))
            continue
        errs.append(f"expression '{expr}' resulted in error: must evaluate to bool")
    if errs:
        if failure_policy == "Ignore":
            return MatchResult(False)
        return MatchResult(False, "; ".join(errs) if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return MatchResult(True)
