"""Models in MLflow: the pyfunc model logged from code (pyfunc.py; nothing pickled), the registry
with its alias policy, and loading a logged model back as a `Predictor`.

Registry policy (`register_model`): every registered version gets the alias `candidate`. The alias
`champion` moves to it only when its run's validation Fmax (`valid/all/fmax`, the last value logged)
is finite and strictly greater than the run metric of the version that holds `champion` now; the first
version with a finite Fmax becomes champion. A champion whose run has no finite Fmax (set by hand) is
never replaced automatically. Stages are not used (deprecated in MLflow).
"""

from __future__ import annotations

import importlib.util
import math
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

from gp_distributed.console import library_output
from gp_distributed.data.store import GeneStore
from gp_distributed.errors import InputError
from gp_distributed.inference.package import Predictor, write_model_package

CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"
SELECTION_METRIC = "valid/all/fmax"
MODEL_NAME = "model"  # artifact name of the logged pyfunc model: runs:/<run id>/model
# The pyfunc model is logged from this file's code (found without importing it: importing it registers
# the model object with MLflow, which only the loading side should do).
_PYFUNC_SOURCE = importlib.util.find_spec("gp_distributed.tracking.pyfunc").origin
DEFAULT_TOP_TERMS = 5
DEFAULT_TOP_CONCEPTS = 3


def pyfunc_signature() -> ModelSignature:
    inputs = Schema([ColSpec(DataType.string, "sequence"), ColSpec(DataType.string, "go_terms", required=False)])
    outputs = Schema([ColSpec(Array(DataType.double), "probabilities"), ColSpec(DataType.string, "top_predictions"),
                      ColSpec(DataType.string, "unknown_go_terms")])
    params = ParamSchema([ParamSpec("top_terms", DataType.long, DEFAULT_TOP_TERMS),
                          ParamSpec("top_concepts", DataType.long, DEFAULT_TOP_CONCEPTS)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)
_PIP_PACKAGES = ("gp_distributed", "mlflow", "torch", "transformers", "peft", "tokenizers", "safetensors",
                 "numpy", "pandas", "pyyaml", "zarr", "scikit-learn", "scipy", "tqdm")


def _pip_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in _PIP_PACKAGES]


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str  # models:/m-<id>, MLflow 3's logged-model URI
    run_uri: str  # runs:/<run id>/model


def log_model(tracking_uri: str, run_id: str, checkpoint_dir: Path, store: GeneStore) -> LoggedModel:
    """Log the pyfunc model of `checkpoint_dir` (package: inference/package.py) into run `run_id`.

    The model is logged from code (gp_distributed/tracking/pyfunc.py), nothing is pickled. If `run_id` is not
    this thread's active run it is reopened and ended again as FINISHED.
    """
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="gp-package-") as scratch:
        artifacts = write_model_package(checkpoint_dir, store, Path(scratch) / "package")
        metadata = {"label_ids": list(store.label_ids), "checkpoint": str(Path(checkpoint_dir).resolve())}
        active = mlflow.active_run()
        reopen = active is None or active.info.run_id != run_id
        if reopen:
            mlflow.start_run(run_id=run_id, log_system_metrics=False)
        try:
            with warnings.catch_warnings():
                # No input example on purpose: MLflow would load and run the model to check it.
                warnings.filterwarnings("ignore", message=".*An input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME, python_model=_PYFUNC_SOURCE,
                    artifacts={key: str(path) for key, path in artifacts.items()},
                    signature=pyfunc_signature(), pip_requirements=_pip_requirements(), metadata=metadata,
                )
        finally:
            if reopen:
                mlflow.end_run()
    return LoggedModel(model_uri=info.model_uri, run_uri=f"runs:/{run_id}/{MODEL_NAME}")


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    candidate_fmax: float | None
    champion_version: str | None  # who holds `champion` after registration
    promoted: bool


def _run_metric(client: MlflowClient, run_id: str | None, key: str) -> float | None:
    if run_id is None:
        return None
    value = client.get_run(run_id).data.metrics.get(key)
    return value if value is not None and math.isfinite(value) else None


def register_model(tracking_uri: str, model: LoggedModel, name: str, run_id: str) -> Registration:
    """Register `model` under `name` with alias `candidate`; move `champion` by the module's policy."""
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with library_output():  # MLflow prints "Successfully registered model", "Created version"; we say it once
        registered = mlflow.register_model(model.model_uri, name)
    version_id = str(registered.version)
    client.set_registered_model_alias(name, CANDIDATE_ALIAS, version_id)
    candidate = _run_metric(client, run_id, SELECTION_METRIC)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        champion = None
    if champion is None:
        promoted = candidate is not None
    else:
        current = _run_metric(client, champion.run_id, SELECTION_METRIC)
        promoted = candidate is not None and current is not None and candidate > current
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version_id)
    holder = version_id if promoted else (str(champion.version) if champion is not None else None)
    return Registration(name, version_id, candidate, holder, promoted)


def load_pyfunc_predictor(model_uri: str, tracking_uri: str, backbone_path: Path | None = None) -> Predictor:
    """The `inference.package.Predictor` inside a logged pyfunc model (`models:/NAME@ALIAS`,
    `models:/NAME/VERSION`, `runs:/ID/model` or a local MLflow model directory)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    model_config = {"backbone_path": str(backbone_path)} if backbone_path is not None else None
    try:
        loaded = mlflow.pyfunc.load_model(model_uri, model_config=model_config)
    except MlflowException as error:
        raise InputError(model_uri, f"cannot load the model from {tracking_uri}: {error.message}") from None
    except yaml.YAMLError as error:  # a damaged MLmodel file, which MLflow parses without wrapping errors
        detail = " ".join(str(error).split())
        raise InputError(model_uri, f"unreadable MLmodel file: {detail}") from None
    return loaded.unwrap_python_model().predictor
