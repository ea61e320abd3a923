"""Model selection state: best validation Fmax and early stopping."""

import math

from gp_distributed.train.selection import ModelSelection


def test_best_is_tracked_and_patience_counts_evaluations_without_improvement() -> None:
    selection = ModelSelection()
    assert selection.observe(10, 0.30, patience=2)
    assert not selection.observe(20, 0.30, patience=2)  # equal is not better
    assert not selection.stopped_early
    assert not selection.observe(30, 0.29, patience=2)
    assert selection.stopped_early
    assert (selection.best_valid_fmax, selection.best_step) == (0.30, 10)


def test_nan_never_improves_and_no_patience_never_stops() -> None:
    selection = ModelSelection()
    assert not selection.observe(1, math.nan, patience=None)
    assert selection.best_step is None
    for step in range(2, 50):
        selection.observe(step, 0.1, patience=None)
    assert not selection.stopped_early


def test_state_round_trips_and_old_checkpoints_start_fresh() -> None:
    selection = ModelSelection()
    selection.observe(5, 0.4, patience=3)
    assert ModelSelection.from_state_dict(selection.state_dict()) == selection
    assert ModelSelection.from_state_dict(None) == ModelSelection()
