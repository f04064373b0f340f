"""The HorizontalPodAutoscaler's replica algorithm for one AverageValue Pods metric, as kube-controller-manager
runs it (pkg/controller/podautoscaler: replica_calculator.go and horizontal.go), so a load test on one server
can show the replica count a shipped HPA manifest would choose.

Per sync: ratio = metric / target; within the tolerance (0.1) the count stays, else the proposal is
ceil(ratio x current). Proposals are stabilized (scale-up: the lowest proposal in the scale-up window;
scale-down: the highest in the scale-down window), then limited by the `behavior` policies (changes within
each policy's period count against it; `selectPolicy: Max` takes the policy allowing the largest change),
then bounded by min/max replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance
SYNC_PERIOD_SECONDS = 15.0  # --horizontal-pod-autoscaler-sync-period


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" or "Percent"
    value: int
    period_seconds: float


@dataclass(frozen=True)
class Rules:
    stabilization_window_seconds: float
    select_policy: str
    policies: tuple[Policy, ...]

    @classmethod
    def from_manifest(cls, rules: dict[str, Any], default_window: float, time_scale: float) -> "Rules":
        return cls(
            stabilization_window_seconds=rules.get("stabilizationWindowSeconds", default_window) / time_scale,
            select_policy=rules.get("selectPolicy", "Max"),
            policies=tuple(
                Policy(p["type"], int(p["value"]), p["periodSeconds"] / time_scale) for p in rules["policies"]
            ),
        )


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    target_average_value: float
    scale_up: Rules
    scale_down: Rules
    sync_period_seconds: float = SYNC_PERIOD_SECONDS
    tolerance: float = TOLERANCE

    @classmethod
    def from_manifest(cls, hpa: dict[str, Any], time_scale: float = 1.0) -> "HpaSpec":
        """From a rendered autoscaling/v2 HPA with one Pods metric; every duration divided by `time_scale`."""
        spec = hpa["spec"]
        (metric,) = spec["metrics"]
        behavior = spec.get("behavior", {})
        return cls(
            min_replicas=spec.get("minReplicas", 1),
            max_replicas=spec["maxReplicas"],
            target_average_value=float(metric["pods"]["target"]["averageValue"]),
            scale_up=Rules.from_manifest(behavior["scaleUp"], 0, time_scale),
            scale_down=Rules.from_manifest(behavior["scaleDown"], 300, time_scale),
            sync_period_seconds=SYNC_PERIOD_SECONDS / time_scale,
        )


@dataclass
class HpaController:
    spec: HpaSpec
    replicas: int
    _recommendations: list[tuple[float, int]] = field(default_factory=list)
    _scale_events: list[tuple[float, int]] = field(default_factory=list)  # (time, replicas added; < 0 removed)

    def sync(self, now: float, average_metric: float) -> int:
        """One reconcile: the metric's average over all current replicas in, the new replica count out."""
        current = self.replicas
        ratio = average_metric / self.spec.target_average_value
        proposal = current if abs(ratio - 1.0) <= self.spec.tolerance else math.ceil(ratio * current)
        stabilized = self._stabilize(now, proposal)
        desired = self._limit_rate(now, stabilized)
        if desired != current:
            self._scale_events.append((now, desired - current))
            self.replicas = desired
        return self.replicas

    def _stabilize(self, now: float, proposal: int) -> int:
        up_cutoff = now - self.spec.scale_up.stabilization_window_seconds
        down_cutoff = now - self.spec.scale_down.stabilization_window_seconds
        up, down = proposal, proposal
        for timestamp, recommendation in self._recommendations:
            if timestamp > up_cutoff:
                up = min(up, recommendation)
            if timestamp > down_cutoff:
                down = max(down, recommendation)
        self._recommendations.append((now, proposal))
        oldest = min(up_cutoff, down_cutoff)
        self._recommendations = [(t, r) for t, r in self._recommendations if t > oldest]
        return min(max(self.replicas, up), down)

    def _changes_within(self, now: float, period: float) -> tuple[int, int]:
        added = sum(d for t, d in self._scale_events if t > now - period and d > 0)
        removed = -sum(d for t, d in self._scale_events if t > now - period and d < 0)
        return added, removed

    def _limit_rate(self, now: float, desired: int) -> int:
        current, spec = self.replicas, self.spec
        if desired > current:
            rules = spec.scale_up
            if rules.select_policy == "Disabled":
                return current
            limits = []
            for policy in rules.policies:
                added, removed = self._changes_within(now, policy.period_seconds)
                start = current - added + removed
                limits.append(
                    start + policy.value if policy.type == "Pods" else math.ceil(start * (1 + policy.value / 100))
                )
            limit = max(limits) if rules.select_policy == "Max" else min(limits)
            return min(desired, max(limit, current), spec.max_replicas)
        if desired < current:
            rules = spec.scale_down
            if rules.select_policy == "Disabled":
                return current
            limits = []
            for policy in rules.policies:
                added, removed = self._changes_within(now, policy.period_seconds)
                start = current + removed - added
                limits.append(
                    start - policy.value if policy.type == "Pods" else int(start * (1 - policy.value / 100))
                )
            limit = min(limits) if rules.select_policy == "Max" else max(limits)
            return max(desired, min(limit, current), spec.min_replicas)
        return min(max(desired, spec.min_replicas), spec.max_replicas)
