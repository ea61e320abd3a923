"""Choosing the model a run ships: the checkpoint with the best validation Fmax (as HF Trainer's
`load_best_model_at_end`), and early stopping after `train.early_stopping_patience` evaluations without
a better one. Pure state, saved in every checkpoint's client state so a resumed run decides the same."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

SELECTION_METRIC = "valid/all/fmax"  # what "best" means, in the flattened metric names the loop reports


@dataclass
class ModelSelection:
    best_valid_fmax: float = -math.inf
    best_step: int | None = None
    evaluations_since_best: int = 0
    stopped_early: bool = False

    def observe(self, step: int, valid_fmax: float, patience: int | None) -> bool:
        """Record one validation evaluation; returns whether it is a new best. A NaN Fmax (no validation
        gene has a true term) never improves. Sets `stopped_early` once `patience` evaluations in a row
        have not improved (never when `patience` is None)."""
        improved = not math.isnan(valid_fmax) and valid_fmax > self.best_valid_fmax
        if improved:
            self.best_valid_fmax, self.best_step, self.evaluations_since_best = valid_fmax, step, 0
        else:
            self.evaluations_since_best += 1
        if patience is not None and self.evaluations_since_best >= patience:
            self.stopped_early = True
        return improved

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any] | None) -> ModelSelection:
        """Checkpoints written before model selection existed carry none: start fresh."""
        return cls(**state) if state else cls()
