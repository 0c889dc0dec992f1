"""The FitError message, worded and ordered as upstream's FitError.Error()."""

from __future__ import annotations

from scheduler.status import (
    UNSCHEDULABLE,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    Diagnosis,
    FitError,
    Status,
    fit_error_message,
    reason_histogram,
)


def test_reasons_are_counted_and_sorted_as_strings() -> None:
    statuses = [Status(UNSCHEDULABLE, "Insufficient cpu"), Status(UNSCHEDULABLE, "Insufficient cpu", "Too many pods"),
                Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) had untolerated taint {a: b}")]
    assert reason_histogram(statuses) == ["1 Too many pods", "1 node(s) had untolerated taint {a: b}",
                                          "2 Insufficient cpu"]


def test_message_with_filter_reasons_and_preemption() -> None:
    d = Diagnosis(node_to_status={
        "n1": Status(UNSCHEDULABLE, "Insufficient cpu"),
        "n2": Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) had untolerated taint {dedicated: infra}"),
        "n3": Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "node(s) had untolerated taint {dedicated: infra}"),
    })
    assert fit_error_message(3, d) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: infra}.")
    d.post_filter_msg = "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, " \
                        "2 Preemption is not helpful for scheduling."
    assert str(FitError("default/p", 3, d)) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: infra}. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.")


def test_prefilter_rejection_is_reported_once_not_per_node() -> None:
    st = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "pod affinity terms conflict")
    d = Diagnosis(node_to_status={"a": st, "b": st}, pre_filter_msg=st.message)
    assert fit_error_message(2, d) == "0/2 nodes are available: pod affinity terms conflict."
