"""Learning-rate schedules: 3DGS's log-linear decay with an optional sine warm-up delay."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ExponentialDecay:
    """lr(step) = delay(step) · exp((1 − t) · log lr_init + t · log lr_final),  t = clamp(step / max_steps, 0, 1).

    The decay is log-linear (geometric) from `lr_init` to `lr_final` over
    `max_steps`, then stays at `lr_final`. With `delay_steps` > 0 the rate
    starts at `delay_mult · lr` and eases up to the full rate along a quarter
    sine over the first `delay_steps` steps (3DGS's `lr_delay_mult` warm-up).
    """

    lr_init: float
    lr_final: float
    max_steps: int
    delay_steps: int = 0
    delay_mult: float = 1.0

    def __post_init__(self) -> None:
        if self.lr_init < 0 or self.lr_final < 0:
            raise ValueError(f"learning rates must be >= 0, got {self.lr_init} and {self.lr_final}")
        if (self.lr_init == 0) != (self.lr_final == 0):
            raise ValueError("a log-linear decay needs both rates > 0 (or both 0 for a frozen parameter)")
        if self.max_steps <= 0:
            raise ValueError(f"max_steps must be > 0, got {self.max_steps}")

    def __call__(self, step: int) -> float:
        if step < 0 or self.lr_init == 0:
            return 0.0
        if self.delay_steps > 0:
            ramp = min(max(step / self.delay_steps, 0.0), 1.0)
            delay = self.delay_mult + (1 - self.delay_mult) * math.sin(0.5 * math.pi * ramp)
        else:
            delay = 1.0
        t = min(max(step / self.max_steps, 0.0), 1.0)
        return delay * math.exp((1 - t) * math.log(self.lr_init) + t * math.log(self.lr_final))


def constant(lr: float, max_steps: int = 1) -> ExponentialDecay:
    """A schedule that stays at `lr`."""
    return ExponentialDecay(lr, lr, max(max_steps, 1))
