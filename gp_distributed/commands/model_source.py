"""Which trained model a command means: `--model` as a registry or run URI, an MLflow model directory,
a checkpoint directory or a run directory (its latest complete checkpoint).

Checkpoints take their vocabularies from the store they trained on (or `store`); MLflow models carry
theirs. MLflow URIs are looked up in `tracking_uri`, resolved like training's.
"""

from __future__ import annotations

from pathlib import Path

from gp_distributed.checkpoint import resolve_checkpoint
from gp_distributed.errors import InputError
from gp_distributed.inference.package import Predictor

_MLFLOW_SCHEMES = ("models:/", "runs:/")


def existing_tracking_uri(tracking_uri: str | None) -> str:
    """The absolute tracking URI (`tracker.resolve_tracking_uri`) to read from. InputError when it is a
    SQLite database that does not exist: reading must not create an empty one (MLflow would, and say
    so on stderr) only to report that the model is not in it."""
    from gp_distributed.tracking.tracker import (
        resolve_tracking_uri,  # MLflow only when a URI needs it
    )

    uri = resolve_tracking_uri(tracking_uri, Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise InputError(uri, "no MLflow database here (pass --tracking-uri or set MLFLOW_TRACKING_URI)")
    return uri


def load_predictor(model: str, *, store: Path | None = None, tracking_uri: str | None = None,
                   backbone_path: Path | None = None) -> Predictor:
    """The predictor of `model` (see the module docstring for the accepted forms)."""
    if model.startswith(_MLFLOW_SCHEMES):
        from gp_distributed.tracking.registry import load_pyfunc_predictor

        return load_pyfunc_predictor(model, existing_tracking_uri(tracking_uri), backbone_path)
    path = Path(model)
    if (path / "MLmodel").is_file():
        from gp_distributed.tracking.registry import load_pyfunc_predictor
        from gp_distributed.tracking.tracker import resolve_tracking_uri

        return load_pyfunc_predictor(str(path.resolve()), resolve_tracking_uri(tracking_uri, Path.cwd()), backbone_path)
    return Predictor.from_checkpoint(resolve_checkpoint(path), store)
