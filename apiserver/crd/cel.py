"""x-kubernetes-validations: CEL rules of CRD schemas, evaluated with cel-python.

cel-python is imported only when a schema has rules. Definitions are checked for undeclared
names and estimated cost (apiserver.crd.celcost); evaluation is metered in steps per object.
Not implemented: optionalOldSelf, full static type checking, ratcheting. Rules cel-python cannot run (optional syntax
`.?`, library functions it lacks such as quantity() or url()) are skipped rather than failing
valid objects.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from apimachinery.duration import parse_duration
from apimachinery.errors import field_cause
from apimachinery.validation import (
    FIELD_VALUE_INVALID,
    child,
    duplicate_cause,
    forbidden_cause,
    index,
    invalid_cause,
    key,
    required_cause,
)
from apiserver.celengine import OUT_OF_BUDGET, STRING_LITERAL, Engine, OutOfBudget, Run
from apiserver.crd.celcost import (
    STATIC_EXPRESSION_LIMIT,
    RuleCompileError,
    TotalCost,
    cost_error_message,
    estimate,
    expression_cost,
)
from apiserver.crd.schema import (
    LIST_MAP_KEYS,
    LIST_TYPE,
    MAP_TYPE,
    VALIDATIONS,
    Cause,
    FieldPathError,
    Schema,
    additional_of,
    default_of,
    field_schema,
    invalid,
    items_of,
    props_of,
    type_of,
    typed_key,
    valid_field_path,
)


def rules_of(s: Schema | None) -> list[dict[str, Any]]:
    """The schema's x-kubernetes-validations entries."""
    rules = (s or {}).get(VALIDATIONS)
    if not isinstance(rules, list):
        return []
    # string fields of another JSON type count as unset (a typed decode would have refused them)
    text = ("rule", "message", "messageExpression", "fieldPath", "reason")
    return [{k: v for k, v in r.items() if k not in text or isinstance(v, str)} if isinstance(r, dict) else {}
            for r in rules]


def rule_field_path(json_path: str, s: Schema | None) -> str | None:
    """A rule's fieldPath as a field path of causes (None when it names no field)."""
    try:
        segments, _ = valid_field_path(json_path, s)
    except FieldPathError:
        return None
    out = ""
    for name, is_key in segments:
        out = key(out, name) if is_key else child(out, name)
    return out


# Evaluation steps one object's rules may take (a visited node is a step; cel-python runs ~70,000
# a second here, in apiserver.celengine's thread). Upstream's RuntimeCELCostBudget (10M, "roughly
# one second" of cel-go) admits ~4M of our steps; this admits a quarter of that: a rule whose
# estimated cost passed the definition's checks with a few hundred items per list still runs.
RUNTIME_STEP_BUDGET = 1_000_000


@functools.lru_cache(maxsize=4096)  # asked per rule and value on every write
def _uses_old_self(rule: str) -> bool:
    return re.search(r"\boldSelf\b", STRING_LITERAL.sub("", rule)) is not None


def rule_compile_errors(s: Schema, path: str, uncorrelatable_at: str | None, *, is_root: bool = False,
                        cardinality: int | None = 1, total: TotalCost | None = None) -> list[Cause]:
    """CRD validation of the schema's rules: they compile, name only what the schema declares,
    stay within the estimated cost budget (`cardinality`: how often the rules may run in one
    object, None when unbounded; costs add up in `total`); oldSelf only where it correlates."""
    try:
        cel = Engine.get()
    except ImportError:
        return []  # without cel-python, rules are neither compiled nor enforced
    causes: list[Cause] = []
    for i, rule in enumerate(rules_of(s)):
        rp = index(child(path, VALIDATIONS), i)
        text = rule.get("rule") or ""
        old_self = _uses_old_self(text)
        prog = cel.compile(text)
        if isinstance(prog, str):
            causes.append(invalid_cause(child(rp, "rule"), rule, prog))
        elif prog is not None:
            try:
                cost = expression_cost(estimate(prog.ast, s, is_root=is_root, old_self=old_self), cardinality, s)
            except RuleCompileError as e:
                causes.append(invalid_cause(child(rp, "rule"), rule, str(e)))
            except RecursionError:
                causes.append(invalid_cause(child(rp, "rule"), rule, "compilation failed: expression too deeply nested"))
            else:
                if cost > STATIC_EXPRESSION_LIMIT:
                    causes.append(forbidden_cause(child(rp, "rule"), cost_error_message(
                        "estimated rule cost", cost, STATIC_EXPRESSION_LIMIT)))
                if total is not None:
                    total.observe(child(rp, "rule"), cost)
        if rule.get("messageExpression"):
            mprog = cel.compile(rule["messageExpression"])
            if isinstance(mprog, str):
                causes.append(invalid_cause(child(rp, "messageExpression"), rule, f"messageExpression {mprog}"))
            elif mprog is not None:
                causes.extend(_message_expression_cost(mprog, s, rule, child(rp, "messageExpression"), is_root,
                                                       old_self, total))
        if old_self:
            if uncorrelatable_at is not None:
                causes.append(invalid_cause(child(rp, "rule"), rule.get("rule"), "oldSelf cannot be used on the "
                                            f"uncorrelatable portion of the schema within {uncorrelatable_at}"))
        elif rule.get("optionalOldSelf") is not None:
            causes.append(invalid_cause(child(rp, "optionalOldSelf"), rule["optionalOldSelf"],
                                        "may not be set if oldSelf is not used in rule"))
    return causes


def _message_expression_cost(prog: Any, s: Schema, rule: dict[str, Any], mpath: str, is_root: bool,
                             old_self: bool, total: TotalCost | None) -> list[Cause]:
    """A messageExpression's names and cost (upstream counts it once, not per value)."""
    try:
        cost = estimate(prog.ast, s, is_root=is_root, old_self=old_self)
    except RuleCompileError as e:
        return [invalid_cause(mpath, rule, f"messageExpression {e}")]
    if total is not None:
        total.observe(mpath, cost)
    if cost > STATIC_EXPRESSION_LIMIT:
        return [forbidden_cause(mpath, cost_error_message("estimated messageExpression cost", cost,
                                                          STATIC_EXPRESSION_LIMIT))]
    return []


def validate_rules(schema: Schema, obj: Any, old: Any, path: str, *, is_resource_root: bool) -> list[Cause]:
    """The x-kubernetes-validations failures of `obj` (`old` bound to oldSelf), under `path`."""
    del is_resource_root  # values are dynamic here: apiVersion/kind/metadata are reachable anyway
    try:
        cel = Engine.get()
    except ImportError:
        return []
    causes: list[Cause] = []
    _cel_walk(Run(cel, RUNTIME_STEP_BUDGET), schema, obj, old, path, causes)
    return causes


def _cel_walk(run: Run, s: Schema | None, obj: Any, old: Any, path: str, causes: list[Cause]) -> None:
    if s is None or obj is None or run.exhausted:
        return
    if s.get(VALIDATIONS):
        causes.extend(_cel_rules(run, s, obj, old, path))
    for sub in s.get("allOf") or []:
        if isinstance(sub, dict) and sub.get(VALIDATIONS):
            causes.extend(_cel_rules(run, sub, obj, old, path))
    if isinstance(obj, list):
        items = items_of(s)
        for i, v in enumerate(obj):
            _cel_walk(run, items, v, _correlated_item(s, v, old), index(path, i), causes)
    elif isinstance(obj, dict):
        correlatable = s.get(MAP_TYPE) in (None, "granular", "atomic")
        old_map = old if correlatable and isinstance(old, dict) else {}
        props = props_of(s)
        if additional_of(s) is not None:
            for k, v in obj.items():
                _cel_walk(run, additional_of(s), v, old_map.get(k), key(path, k), causes)
        for k, v in obj.items():
            if k in props:
                _cel_walk(run, props[k], v, old_map.get(k), child(path, k), causes)


def _correlated_item(s: Schema, item: Any, old: Any) -> Any:
    """Only map-type lists correlate old and new items (by their map keys)."""
    if s.get(LIST_TYPE) != "map" or not isinstance(old, list) or not isinstance(item, dict):
        return None
    keys = s.get(LIST_MAP_KEYS) or []
    item_props = props_of(items_of(s))

    def key_of(x: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(typed_key(x.get(k, default_of(item_props.get(k)))) for k in keys)

    want = key_of(item)
    return next((o for o in old if isinstance(o, dict) and key_of(o) == want), None)


def _rule_text(rule: dict[str, Any]) -> str:
    """ruleErrorString: the message if any, else the rule."""
    return (rule.get("message") or "").strip() or (rule.get("rule") or "").strip()


def _cel_rules(run: Run, s: Schema, obj: Any, old: Any, path: str) -> list[Cause]:
    cel = run.cel
    causes: list[Cause] = []
    t = type_of(s)
    activation = {"self": _to_cel(cel.types, obj, s)}
    if old is not None:
        activation["oldSelf"] = _to_cel(cel.types, old, s)
    for rule in rules_of(s):
        text = rule.get("rule") or ""
        if not text.strip():
            continue
        if _uses_old_self(text) and old is None:
            continue  # transition rules only run when there is an old value
        prog = cel.compile(text)
        if prog is None:
            continue  # syntax this evaluator cannot run: not enforced
        if isinstance(prog, str):
            causes.append(invalid_cause(path or "<nil>", t, f"rule compile error: {prog}"))
            continue
        try:
            result = run.evaluate(prog, activation)
        except OutOfBudget:
            causes.append(invalid_cause(path or "<nil>", t, OUT_OF_BUDGET))
            return causes
        except cel.celpy.CELEvalError as e:
            result = e
        except Exception as e:  # cel-python's own faults on odd values: an evaluation error, never a 500
            result = cel.celpy.CELEvalError(f"{type(e).__name__}: {e}")
        if isinstance(result, cel.celpy.CELEvalError):
            if "undeclared reference" in str(result.args[0] if result.args else result):
                continue  # a Kubernetes CEL library function cel-python lacks: not enforced
            causes.append(_cel_eval_error(path, t, result, rule))
            continue
        if result is True or (isinstance(result, cel.types.BoolType) and bool(result)):
            continue
        fpath = path
        if rule.get("fieldPath"):
            fpath = child(path, rule_field_path(rule["fieldPath"].strip(), s) or "")
        try:
            message = _message_expression(run, rule, activation)
        except OutOfBudget:
            causes.append(invalid_cause(path or "<nil>", t, "messageExpression evaluation failed due to running out "
                                        "of cost budget, no further validation rules will be run"))
            return causes
        detail = message or (
            (rule.get("message") or "").strip() or f"failed rule: {_rule_text(rule)}")
        causes.append(_rule_failure(fpath or "<nil>", obj, t, detail, rule.get("reason")))
    return causes


def _message_expression(run: Run, rule: dict[str, Any], activation: dict[str, Any]) -> str | None:
    expr = rule.get("messageExpression")
    if not expr:
        return None
    prog = run.cel.compile(expr)
    if prog is None or isinstance(prog, str):
        return None
    try:
        msg = run.evaluate(prog, activation)
    except Exception:  # CELEvalError, or cel-python's own faults: fall back to the message
        return None
    if not isinstance(msg, str) or not msg.strip() or "\n" in msg.strip() or len(msg.strip()) > 5000:
        return None  # upstream falls back to the rule's message
    return str(msg).strip()


def _rule_failure(path: str, obj: Any, t: str, detail: str, reason: str | None) -> Cause:
    # object and array values are omitted from the message (field.OmitValueType)
    omit = t in ("object", "array")
    if reason == "FieldValueForbidden":
        return forbidden_cause(path, detail)
    if reason == "FieldValueRequired":
        return required_cause(path, detail)
    if reason == "FieldValueDuplicate":
        if omit:
            return field_cause(path, "Duplicate value", "FieldValueDuplicate")
        return duplicate_cause(path, obj)
    if omit:
        return field_cause(path, f"Invalid value: {detail}", FIELD_VALUE_INVALID)
    return invalid(path, obj, detail)


def _cel_eval_error(path: str, t: str, err: Any, rule: dict[str, Any]) -> Cause:
    args = getattr(err, "args", ())
    kind = args[1] if len(args) > 1 else None
    text = str(args[0]) if args else str(err)
    if kind is TypeError or "no such overload" in text:
        return invalid_cause(path or "<nil>", t, "'no such overload': call arguments did not match a supported "
                             f"operator, function or macro signature for rule: {_rule_text(rule)}")
    if kind is KeyError:
        m = re.search(r"'([^']*)'", text)
        text = f"no such key: {m.group(1) if m else text}"
    elif kind is ZeroDivisionError:
        text = "division by zero"
    return invalid_cause(path or "<nil>", t, f"{text} evaluating rule: {_rule_text(rule)}")


def _to_cel(t: Any, v: Any, s: Schema | None) -> Any:
    """A JSON value as a CEL value typed by its schema (UnstructuredToVal)."""
    st = type_of(s)
    if v is None:
        return None
    if isinstance(v, bool):
        return t.BoolType(v)
    if isinstance(v, str):
        fmt = (s or {}).get("format")
        if st == "string" and fmt == "duration" and (nanos := _go_duration_nanos(v)) is not None:
            return t.DurationType(nanos // 10**9, nanos % 10**9)
        if st == "string" and fmt in ("date-time", "date"):
            try:
                return t.TimestampType(v if fmt == "date-time" else v + "T00:00:00Z")
            except (ValueError, TypeError):
                pass
        return t.StringType(v)
    if isinstance(v, int):
        return t.DoubleType(float(v)) if st == "number" else t.IntType(v)
    if isinstance(v, float):
        return t.IntType(int(v)) if st == "integer" and v.is_integer() else t.DoubleType(v)
    if isinstance(v, list):
        items = items_of(s)
        return t.ListType([_to_cel(t, x, items) for x in v])
    if isinstance(v, dict):
        return t.MapType({t.StringType(k): _to_cel(t, x, field_schema(s, k)) for k, x in v.items()})
    return v


def _go_duration_nanos(s: str) -> int | None:
    """time.ParseDuration in nanoseconds, or None."""
    try:
        return parse_duration(s)
    except ValueError:
        return None
