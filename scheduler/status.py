"""Plugin results and the "0/N nodes are available: ..." message, as upstream's framework words them.

A plugin returns None for success (the hot path allocates nothing) or a `Status`. The codes
are upstream's: Unschedulable may be fixed by preemption, UnschedulableAndUnresolvable may
not; Skip (from PreFilter/PreScore) means "this plugin has nothing to do for this pod".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SUCCESS = 0
ERROR = 1
UNSCHEDULABLE = 2
UNSCHEDULABLE_AND_UNRESOLVABLE = 3
WAIT = 4
SKIP = 5

CODE_NAMES = {SUCCESS: "Success", ERROR: "Error", UNSCHEDULABLE: "Unschedulable",
              UNSCHEDULABLE_AND_UNRESOLVABLE: "UnschedulableAndUnresolvable", WAIT: "Wait", SKIP: "Skip"}

NO_NODE_AVAILABLE_MSG = "0/{} nodes are available"
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


class Status:
    """A non-success plugin result: a code, the reasons (shown in events) and the plugin."""

    __slots__ = ("code", "plugin", "reasons")

    def __init__(self, code: int, *reasons: str, plugin: str = "") -> None:
        self.code = code
        self.reasons: tuple[str, ...] = reasons
        self.plugin = plugin

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_unschedulable(self) -> bool:
        """Unschedulable or UnschedulableAndUnresolvable (upstream IsRejected, minus Pending)."""
        return self.code in (UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE)

    def with_plugin(self, plugin: str) -> Status:
        if self.plugin == plugin:
            return self
        return Status(self.code, *self.reasons, plugin=plugin)

    def __repr__(self) -> str:
        return f"Status({CODE_NAMES.get(self.code, self.code)}, {list(self.reasons)!r}, plugin={self.plugin!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Status) and self.code == other.code and self.reasons == other.reasons
                and self.plugin == other.plugin)

    def __hash__(self) -> int:
        return hash((self.code, self.reasons, self.plugin))


def is_success(status: Status | None) -> bool:
    return status is None or status.code == SUCCESS


def code_of(status: Status | None) -> int:
    return SUCCESS if status is None else status.code


def skip() -> Status:
    return Status(SKIP)


def unschedulable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE, *reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)


def error(message: str) -> Status:
    return Status(ERROR, message)


@dataclass
class Diagnosis:
    """Why a pod fits nowhere: each node's status, the plugins that rejected it, PreFilter/PostFilter text."""

    node_to_status: dict[str, Status] = field(default_factory=dict)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


def reason_histogram(statuses: Iterable[Status]) -> list[str]:
    """"<count> <reason>" for every distinct reason, sorted as strings (upstream sortReasonsHistogram)."""
    counts: dict[str, int] = {}
    for st in statuses:
        for r in st.reasons:
            counts[r] = counts.get(r, 0) + 1
    return sorted(f"{n} {r}" for r, n in counts.items())


def fit_error_message(num_all_nodes: int, diagnosis: Diagnosis) -> str:
    """FitError.Error(): "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) .... preemption: ..."."""
    msg = NO_NODE_AVAILABLE_MSG.format(num_all_nodes) + ":"
    if diagnosis.pre_filter_msg:
        msg += f" {diagnosis.pre_filter_msg}."
    else:
        # After a PreFilter rejection every node carries the same status: no per-node histogram.
        hist = reason_histogram(diagnosis.node_to_status.values())
        if hist:
            msg += f" {', '.join(hist)}."
    if diagnosis.post_filter_msg:
        msg += f" {diagnosis.post_filter_msg}"
    return msg


class FitError(Exception):
    """The pod fits on no node (the scheduling cycle's normal failure)."""

    def __init__(self, pod_key: str, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        super().__init__(pod_key)
        self.pod_key = pod_key
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return fit_error_message(self.num_all_nodes, self.diagnosis)


def statuses_message(num_nodes: int, statuses: Mapping[str, Status]) -> str:
    """The message of a FitError built only from node statuses (preemption's inner message)."""
    return fit_error_message(num_nodes, Diagnosis(node_to_status=dict(statuses)))
