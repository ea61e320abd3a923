"""Report plots: real PNG files of the expected size, the heatmap's concept choice, empty-input errors."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from gp_distributed.evaluation.plots import (
    plot_bin_metrics,
    plot_concept_heatmap,
    plot_precision_recall,
    plot_training_curves,
    strongest_concepts,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_shape(path: Path) -> tuple[int, ...]:
    assert path.read_bytes()[:8] == PNG_MAGIC
    return matplotlib.image.imread(path).shape


def test_bin_metrics_plot(tmp_path: Path) -> None:
    row = {"fmax": 0.4, "auc": 0.7}
    results = {"genepheno": {"all": row, "11-30": row}, "naive": {"all": {"fmax": 0.3, "auc": 0.5}, "11-30": row}}
    height, width, _ = _png_shape(plot_bin_metrics(results, tmp_path / "bins.png"))
    assert width > height > 100  # two panels side by side
    with pytest.raises(ValueError):
        plot_bin_metrics({}, tmp_path / "none.png")


def test_precision_recall_plot_with_propagation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=(20, 3))
    y_score = rng.random((20, 3))
    path = plot_precision_recall({"model": (y_true, y_score)}, tmp_path / "pr.png", parents=[[], [0], [0]])
    assert _png_shape(path)[0] > 100


def test_heatmap_keeps_the_strongest_concepts_of_the_chosen_terms(tmp_path: Path) -> None:
    association = np.array([[0.1, 5.0, 0.0], [-0.9, 0.2, 0.0], [0.3, 0.1, 0.0], [0.0, 0.0, 0.0]])
    # Over terms 0 and 2 only: |weights| max 0.1, 0.9, 0.3, 0 -> concepts 1, 2
    assert strongest_concepts(association, [0, 2], 2).tolist() == [1, 2]
    assert strongest_concepts(association, [0, 1, 2], 1).tolist() == [0]
    many = np.random.default_rng(0).normal(size=(30, 3))
    ids, names = [f"GO:{i}" for i in range(30)], [f"concept {i}" for i in range(30)]
    small = plot_concept_heatmap(many, ids, names, ["t0", "t1", "t2"], [0], tmp_path / "small.png", top_concepts=2)
    large = plot_concept_heatmap(many, ids, [], ["t0", "t1", "t2"], [0, 1, 2], tmp_path / "large.png", top_concepts=30)
    assert _png_shape(large)[0] > _png_shape(small)[0]  # more concept rows, taller figure
    with pytest.raises(ValueError):
        plot_concept_heatmap(association, [], [], [], [], tmp_path / "none.png")


def test_training_curves_plot_only_the_logged_keys(tmp_path: Path) -> None:
    history = [{"step": 1.0, "loss": 3.0}, {"step": 2.0, "loss": 2.0, "valid/all/fmax": 0.2}]
    one = _png_shape(plot_training_curves(history, tmp_path / "curves.png", keys=("loss",)))
    two = _png_shape(plot_training_curves(history, tmp_path / "curves2.png", keys=("loss", "valid/all/fmax", "nope")))
    assert two[1] > one[1]  # a second panel beside the first
    with pytest.raises(ValueError):
        plot_training_curves(history, tmp_path / "none.png", keys=("nope",))
