"""How fast the horizontal pod autoscaler may move: stabilization and scaling policies
(upstream horizontal.go: normalizeDesiredReplicas[WithBehaviors], stabilizeRecommendation[WithBehaviors],
convertDesiredReplicasWith{Rules,BehaviorRate}, storeScaleEvent and the scale-limit helpers).

Per HPA (key "ns/name") the controller remembers, in memory as upstream does (a restarted
controller-manager starts afresh):

* recommendations: the unstabilized desired counts of recent syncs. Without `spec.behavior`
  the highest of those within --horizontal-pod-autoscaler-downscale-stabilization wins (no fast
  scale-down), and a scale-up is limited to max(2 × current, 4). With `spec.behavior` the count
  is kept between the lowest recommendation within scaleUp.stabilizationWindowSeconds and the
  highest within scaleDown.stabilizationWindowSeconds.
* scale events (with `spec.behavior` only): the replicas added and removed, with their times;
  each policy allows a change relative to the count at the start of its periodSeconds
  (Pods: ± value, Percent: × (1 ± value/100)), and selectPolicy picks the largest change (Max),
  the smallest (Min) or none (Disabled).

Every step reports the conditions it sets as (type, status, reason, message) tuples, in
upstream's order and with upstream's texts; the clock is injected (FakeClock in tests).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from controller_manager.base import Clock

Obj = dict[str, Any]
Condition = tuple[str, str, str, str]

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)

ABLE_TO_SCALE = "AbleToScale"
SCALING_LIMITED = "ScalingLimited"


def default_scale_up_rules() -> Obj:
    return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                         {"type": "Percent", "value": 100, "periodSeconds": 15}]}


def default_scale_down_rules() -> Obj:
    return {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _merge_rules(given: Obj | None, defaults: Obj) -> Obj:
    """upstream copyHPAScalingRules: what is set wins, the rest is defaulted."""
    out = defaults
    for f in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
        if given and given.get(f) is not None:
            out[f] = copy.deepcopy(given[f])
    return out


def behavior_with_defaults(behavior: Obj | None, downscale_stabilization: float) -> Obj | None:
    """`spec.behavior` as the controller reads it: the apiserver's defaults (GenerateHPAScale{Up,Down}Rules),
    and a scale-down window from --horizontal-pod-autoscaler-downscale-stabilization when unset
    (maybeInitScaleDownStabilizationWindow). None stays None (the behavior-less algorithm)."""
    if behavior is None:
        return None
    out = {"scaleUp": _merge_rules(behavior.get("scaleUp"), default_scale_up_rules()),
           "scaleDown": _merge_rules(behavior.get("scaleDown"), default_scale_down_rules())}
    if out["scaleDown"].get("stabilizationWindowSeconds") is None:
        out["scaleDown"]["stabilizationWindowSeconds"] = int(downscale_stabilization)
    return out


@dataclass
class Recommendation:
    replicas: int
    at: dt.datetime


@dataclass
class ScaleEvent:
    change: int  # absolute value
    at: dt.datetime
    outdated: bool = False


def _longest_period(rules: Obj) -> int:
    return max((int(p.get("periodSeconds") or 0) for p in rules.get("policies") or []), default=0)


@dataclass
class ScaleHistory:
    """The recommendations and scale events of every HPA, and the normalization built on them."""

    clock: Clock
    downscale_stabilization: float = 300.0
    recommendations: dict[str, list[Recommendation]] = field(default_factory=dict)
    scale_up_events: dict[str, list[ScaleEvent]] = field(default_factory=dict)
    scale_down_events: dict[str, list[ScaleEvent]] = field(default_factory=dict)

    def forget(self, key: str) -> None:
        self.recommendations.pop(key, None)
        self.scale_up_events.pop(key, None)
        self.scale_down_events.pop(key, None)

    def record_initial_recommendation(self, key: str, current: int) -> None:
        if not self.recommendations.get(key):
            self.recommendations[key] = [Recommendation(current, self.clock.now())]

    # -- without spec.behavior ---------------------------------------------------------------

    def stabilize_recommendation(self, key: str, desired: int) -> int:
        """The highest recommendation within the downscale window; `desired` replaces the oldest
        expired one (or is appended)."""
        now = self.clock.now()
        cutoff = now - dt.timedelta(seconds=self.downscale_stabilization)
        highest = desired
        old = None
        recs = self.recommendations.setdefault(key, [])
        for i, rec in enumerate(recs):
            if rec.at < cutoff:
                old = i
            elif rec.replicas > highest:
                highest = rec.replicas
        self._record(recs, old, desired, now)
        return highest

    @staticmethod
    def _record(recs: list[Recommendation], old: int | None, desired: int, now: dt.datetime) -> None:
        if old is not None:
            recs[old] = Recommendation(desired, now)
        else:
            recs.append(Recommendation(desired, now))

    def normalize(self, key: str, current: int, desired: int, min_replicas: int,
                  max_replicas: int) -> tuple[int, list[Condition]]:
        """upstream normalizeDesiredReplicas."""
        conds: list[Condition] = []
        stabilized = self.stabilize_recommendation(key, desired)
        if stabilized != desired:
            conds.append((ABLE_TO_SCALE, "True", "ScaleDownStabilized",
                          "recent recommendations were higher than current one, applying the highest recent "
                          "recommendation"))
        else:
            conds.append((ABLE_TO_SCALE, "True", "ReadyForNewScale", "recommended size matches current size"))
        result, reason, message = convert_desired_replicas_with_rules(current, stabilized, min_replicas,
                                                                      max_replicas)
        conds.append((SCALING_LIMITED, "False" if result == stabilized else "True", reason, message))
        return result, conds

    # -- with spec.behavior ------------------------------------------------------------------

    def stabilize_with_behaviors(self, key: str, current: int, desired: int,
                                 behavior: Obj) -> tuple[int, str, str]:
        """upstream stabilizeRecommendationWithBehaviors: (recommendation, reason, message)."""
        now = self.clock.now()
        up_cutoff = now - dt.timedelta(seconds=int(behavior["scaleUp"].get("stabilizationWindowSeconds") or 0))
        down_cutoff = now - dt.timedelta(seconds=int(behavior["scaleDown"].get("stabilizationWindowSeconds") or 0))
        up_recommendation = down_recommendation = desired
        old = None
        recs = self.recommendations.setdefault(key, [])
        for i, rec in enumerate(recs):
            if rec.at > up_cutoff:
                up_recommendation = min(rec.replicas, up_recommendation)
            if rec.at > down_cutoff:
                down_recommendation = max(rec.replicas, down_recommendation)
            if rec.at < up_cutoff and rec.at < down_cutoff:
                old = i
        recommendation = min(max(current, up_recommendation), down_recommendation)
        self._record(recs, old, desired, now)
        if desired >= current:
            return (recommendation, "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest recent recommendation")
        return (recommendation, "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation")

    def _change_in_period(self, period_seconds: int, events: list[ScaleEvent]) -> int:
        cutoff = self.clock.now() - dt.timedelta(seconds=period_seconds)
        return sum(e.change for e in events if e.at > cutoff)

    def _period_start(self, key: str, current: int, policy: Obj) -> int:
        period = int(policy.get("periodSeconds") or 0)
        added = self._change_in_period(period, self.scale_up_events.get(key, []))
        deleted = self._change_in_period(period, self.scale_down_events.get(key, []))
        return current - added + deleted

    def scale_up_limit(self, key: str, current: int, rules: Obj) -> int:
        """upstream calculateScaleUpLimitWithScalingRules: the most replicas the policies allow."""
        return self._policy_limit(key, current, rules, up=True)

    def scale_down_limit(self, key: str, current: int, rules: Obj) -> int:
        """upstream calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow."""
        return self._policy_limit(key, current, rules, up=False)

    def _policy_limit(self, key: str, current: int, rules: Obj, up: bool) -> int:
        """Each policy's bound from its period's starting count; selectPolicy Max takes the largest
        change (the highest bound up, the lowest down), Min the smallest, Disabled none."""
        select = rules.get("selectPolicy") or "Max"
        if select == "Disabled":
            return current
        largest_change = max if up else min
        pick = (min if up else max) if select == "Min" else largest_change
        result = MIN_INT32 if pick is max else MAX_INT32
        for policy in rules.get("policies") or []:
            start = self._period_start(key, current, policy)
            value = int(policy.get("value") or 0)
            if policy.get("type") == "Pods":
                proposed = start + value if up else start - value
            elif policy.get("type") == "Percent" and up:
                # rounded up: a small percentage of few pods must still add one
                proposed = math.ceil(start * (1 + value / 100))
            elif policy.get("type") == "Percent":
                proposed = int(start * (1 - value / 100))
            else:
                continue
            result = pick(result, proposed)
        return result

    def convert_with_behavior_rate(self, key: str, current: int, desired: int, min_replicas: int,
                                   max_replicas: int, behavior: Obj) -> tuple[int, str, str]:
        """upstream convertDesiredReplicasWithBehaviorRate (the stabilization is done before)."""
        if desired > current:
            limit = max(self.scale_up_limit(key, current, behavior["scaleUp"]), current)
            if max_replicas > limit:
                allowed, reason, message = (limit, "ScaleUpLimit",
                                            "the desired replica count is increasing faster than the maximum "
                                            "scale rate")
            else:
                allowed, reason, message = (max_replicas, "TooManyReplicas",
                                            "the desired replica count is more than the maximum replica count")
            if desired > allowed:
                return allowed, reason, message
        elif desired < current:
            limit = min(self.scale_down_limit(key, current, behavior["scaleDown"]), current)
            if min_replicas < limit:
                allowed, reason, message = (limit, "ScaleDownLimit",
                                            "the desired replica count is decreasing faster than the maximum "
                                            "scale rate")
            else:
                allowed, reason, message = (min_replicas, "TooFewReplicas",
                                            "the desired replica count is less than the minimum replica count")
            if desired < allowed:
                return allowed, reason, message
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"

    def normalize_with_behaviors(self, key: str, current: int, desired: int, min_replicas: int,
                                 max_replicas: int, behavior: Obj) -> tuple[int, list[Condition]]:
        """upstream normalizeDesiredReplicasWithBehaviors (`behavior` already defaulted)."""
        conds: list[Condition] = []
        stabilized, reason, message = self.stabilize_with_behaviors(key, current, desired, behavior)
        if stabilized != desired:
            conds.append((ABLE_TO_SCALE, "True", reason, message))
        else:
            conds.append((ABLE_TO_SCALE, "True", "ReadyForNewScale", "recommended size matches current size"))
        result, reason, message = self.convert_with_behavior_rate(key, current, stabilized, min_replicas,
                                                                  max_replicas, behavior)
        conds.append((SCALING_LIMITED, "False" if result == stabilized else "True", reason, message))
        return result, conds

    def store_scale_event(self, behavior: Obj | None, key: str, previous: int, new: int) -> None:
        """Remember a rescale (only with spec.behavior: nothing else reads them); an event older than
        the longest policy period is reused rather than the list growing."""
        if behavior is None:
            return
        now = self.clock.now()
        if new > previous:
            rules, events, change = behavior["scaleUp"], self.scale_up_events.setdefault(key, []), new - previous
        else:
            rules, events, change = behavior["scaleDown"], self.scale_down_events.setdefault(key, []), previous - new
        cutoff = now - dt.timedelta(seconds=_longest_period(rules))
        old = None
        for i, e in enumerate(events):
            if e.at < cutoff:
                e.outdated = True
            if e.outdated:
                old = i
        event = ScaleEvent(change, now)
        if old is not None:
            events[old] = event
        else:
            events.append(event)


def convert_desired_replicas_with_rules(current: int, desired: int, min_replicas: int,
                                        max_replicas: int) -> tuple[int, str, str]:
    """upstream convertDesiredReplicasWithRules: min/max, and at most max(2 × current, 4) at once."""
    scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > scale_up_limit:
        maximum, reason, message = (scale_up_limit, "ScaleUpLimit",
                                    "the desired replica count is increasing faster than the maximum scale rate")
    else:
        maximum, reason, message = (max_replicas, "TooManyReplicas",
                                    "the desired replica count is more than the maximum replica count")
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > maximum:
        return maximum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
