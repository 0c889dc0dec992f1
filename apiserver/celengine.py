"""One CEL engine for the apiserver: cel-python with the parts of Kubernetes' CEL libraries most
expressions use, a bounded cache of compiled programs, and metered evaluation.

cel-python is imported on first use only (when a schema or a webhook has expressions). Its
tree-walking evaluator is wrapped to count visited nodes: callers give each evaluation context
a step budget, as upstream gives each a cost budget, so that no expression can hold the event
loop for long.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# One thread runs everything that evaluates CEL, off the event loop: a rule that uses its whole
# budget takes seconds in cel-python; meanwhile the loop keeps serving (it shares the GIL with one
# thread only), and expensive validations queue behind each other rather than multiply.
_executor: ThreadPoolExecutor | None = None


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cel")
    return await asyncio.get_running_loop().run_in_executor(_executor, fn, *args)


class Engine:
    """cel-python's environment, the Kubernetes library functions it lacks, and compiled programs
    (shared by CRD rules and admission match conditions)."""

    _instance: Engine | None = None

    def __init__(self) -> None:
        import celpy
        from celpy import celtypes

        self.celpy, self.types = celpy, celtypes
        self.env = celpy.Environment()
        self.functions = cel_library(celtypes)
        self._authz_functions: dict[str, Callable[..., Any]] | None = None
        self.programs: dict[tuple[str, bool], Any] = {}
        self.metered = metered_evaluator(celpy)

    @classmethod
    def get(cls) -> Engine:
        if cls._instance is None:
            cls._instance = Engine()
        return cls._instance

    def authz_functions(self) -> dict[str, Callable[..., Any]]:
        """The library plus the `authorizer` variable's (admission expressions only)."""
        if self._authz_functions is None:
            from apiserver.admission.celauthz import library

            self._authz_functions = {**self.functions, **library(self.types)}
        return self._authz_functions

    def compile(self, expr: str, authz: bool = False) -> Any:
        """A program; the compile error's text; or None for syntax cel-python lacks (optionals).
        `authz`: with the `authorizer` library (admission match conditions)."""
        try:
            return self.programs[(expr, authz)]  # every evaluation asks: the cache first, the syntax scan once
        except KeyError:
            pass
        if OPTIONAL_SYNTAX.search(STRING_LITERAL.sub("", expr)):
            prog = None
        else:
            try:
                functions = self.authz_functions() if authz else self.functions
                prog = self.env.program(self.env.compile(expr), functions=functions)
            except self.celpy.CELParseError as e:
                prog = f"compilation failed: ERROR: <input>: Syntax error: {first_line(str(e))}"
            except Exception as e:  # cel-python's own faults on odd input: a compile error, never a 500
                prog = f"compilation failed: {type(e).__name__}: {e}"
        if len(self.programs) > 4096:  # expressions come from API objects: bound the cache
            self.programs.clear()
        self.programs[(expr, authz)] = prog
        return prog


OUT_OF_BUDGET = "validation failed due to running out of cost budget, no further validation rules will be run"


class OutOfBudget(BaseException):
    """Raised from inside cel-python's evaluator: a BaseException, so that none of its
    `except Exception` handlers turns it into a value and carries on."""


class Run:
    """One metered evaluation context: the engine and the evaluation steps left (each node the
    tree-walking evaluator visits is one step; OutOfBudget when they run out)."""

    def __init__(self, cel: Engine, steps: int) -> None:
        self.cel = cel
        self.remaining = steps

    @property
    def exhausted(self) -> bool:
        return self.remaining < 0

    def evaluate(self, prog: Any, activation: dict[str, Any]) -> Any:
        ev = self.cel.metered(prog.ast, activation=prog.new_activation())
        ev.run = self
        return ev.evaluate(activation)


def metered_evaluator(celpy: Any) -> type:
    from celpy.evaluation import Evaluator

    class Metered(Evaluator):
        """cel-python's tree-walking evaluator, counting every node it visits against a budget."""

        run: Run

        def _visit_tree(self, tree: Any) -> Any:
            run = self.run
            run.remaining -= 1
            if run.remaining < 0:
                raise OutOfBudget
            return super()._visit_tree(tree)

        def sub_evaluator(self, ast: Any) -> Any:  # macros' bodies: same budget
            ev = Metered(ast, activation=self.activation)
            ev.run = self.run
            return ev

    return Metered


def first_line(s: str) -> str:
    return s.strip().splitlines()[0] if s.strip() else s


def cel_library(t: Any) -> dict[str, Callable[..., Any]]:
    """The parts of Kubernetes' CEL libraries (strings, lists, regex) most rules use."""
    def s(v: Any) -> Any:
        return t.StringType(v)

    def index_of(x: Any, sub: Any, start: Any = 0) -> Any:
        if isinstance(x, list):
            return t.IntType(next((i for i, v in enumerate(x) if v == sub), -1))
        return t.IntType(str(x).find(str(sub), int(start)))

    def last_index_of(x: Any, sub: Any) -> Any:
        if isinstance(x, list):
            return t.IntType(max((i for i, v in enumerate(x) if v == sub), default=-1))
        return t.IntType(str(x).rfind(str(sub)))

    def replace_(x: Any, old: Any, new: Any, n: Any = -1) -> Any:
        return s(str(x).replace(str(old), str(new), int(n)))

    def split(x: Any, sep: Any, n: Any = -1) -> Any:
        n = int(n)
        parts = [] if n == 0 else str(x).split(str(sep), n - 1 if n > 0 else -1)
        return t.ListType([s(p) for p in parts])

    # RE2 as upstream (and cel-python's own matches()): linear time whatever the pattern, and
    # RE2's syntax (no backreferences or lookaround)
    import re2
    from celpy.evaluation import CELEvalError

    def find(x: Any, rx: Any) -> Any:
        try:
            m = re2.search(str(rx), str(x))
        except re2.error as e:
            return CELEvalError(f"invalid regex: {e}", ValueError, (str(e),))
        return s(m.group(0) if m else "")

    def find_all(x: Any, rx: Any, n: Any = -1) -> Any:
        try:
            found = [m.group(0) for m in re2.finditer(str(rx), str(x))]
        except re2.error as e:
            return CELEvalError(f"invalid regex: {e}", ValueError, (str(e),))
        return t.ListType([s(f) for f in (found if int(n) < 0 else found[: int(n)])])

    return {
        "lowerAscii": lambda x: s("".join(c.lower() if c.isascii() else c for c in str(x))),
        "upperAscii": lambda x: s("".join(c.upper() if c.isascii() else c for c in str(x))),
        "trim": lambda x: s(str(x).strip()),
        "charAt": lambda x, i: s(str(x)[int(i):int(i) + 1]),
        "substring": lambda x, a, b=None: s(str(x)[int(a):] if b is None else str(x)[int(a):int(b)]),
        "indexOf": index_of,
        "lastIndexOf": last_index_of,
        "replace": replace_,
        "split": split,
        "join": lambda x, sep="": s(str(sep).join(str(v) for v in x)),
        "isSorted": lambda x: t.BoolType(all(x[i] <= x[i + 1] for i in range(len(x) - 1))),
        "sum": lambda x: sum(x[1:], x[0]) if x else t.IntType(0),
        "min": lambda x: min(x),
        "max": lambda x: max(x),
        "find": find,
        "findAll": find_all,
    }


STRING_LITERAL = re.compile(r"""'''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""", re.S)


OPTIONAL_SYNTAX = re.compile(r"\.\?|\[\?")
