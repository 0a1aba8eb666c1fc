"""How much one requester's voice counts in a theme's demand (weights from config.yml `demand`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class DemandWeights:
    """A requester counts by funnel stage, times (1 + engagement * ln(1 + their engagement))."""

    stages: Mapping[str, float] = field(default_factory=lambda: {"visitor": 1.0, "suspect": 1.5, "prospect": 2.0, "lead": 3.0, "opportunity": 5.0})
    engagement: float = 0.25


def requester_weight(stage: str, engagement: float, weights: DemandWeights) -> float:
    return weights.stages.get(stage, 1.0) * (1.0 + weights.engagement * math.log1p(max(engagement, 0.0)))
