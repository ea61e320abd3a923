"""Security properties (docs/reliability.md): no pickled code runs on any load path, token auth and
loopback dashboards in every shipped cluster file, no credentials in logged params or saved configs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from gp_distributed.checkpoint import checkpoint_dir_name
from gp_distributed.commands.train import run_training
from gp_distributed.config import config_to_yaml, load_config, redact_credentials
from gp_distributed.errors import InputError
from gp_distributed.tracking.tracker import MlflowTracker, log_run_inputs

from ..conftest import REPO_ROOT, tiny_training_overrides

SOURCE_DIRS = ("gp_distributed", "tools")


class _OpensAFile:
    """Pickles as `open(marker, "w")`: loading it with the full unpickler would create the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.integration
def test_resume_refuses_a_checkpoint_carrying_code(demo_store: Path, tmp_path: Path) -> None:
    overrides = [*tiny_training_overrides(demo_store, tmp_path, "run", 2), "scaling.num_workers=0", "train.zero_stage=2"]
    first = run_training(load_config(None, overrides))
    marker = tmp_path / "code-ran"
    states = first.checkpoint_dir / "engine" / "step_2" / "mp_rank_00_model_states.pt"
    torch.save({"module": _OpensAFile(marker)}, states)
    with pytest.raises(InputError, match="refused to load: the checkpoint holds objects outside") as raised:
        run_training(load_config(None, [*overrides, "train.max_steps=4"]))
    assert str(first.checkpoint_dir / "engine" / "step_2") in str(raised.value)
    assert not marker.exists()
    assert not (first.run_dir / checkpoint_dir_name(4)).exists()


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def test_no_unsafe_deserialisation_in_our_code() -> None:
    """torch.load only with weights_only=True; no pickle/marshal/dill loads; YAML only through safe loaders."""
    offences = []
    for directory in SOURCE_DIRS:
        for path in sorted((REPO_ROOT / directory).rglob("*.py")):
            for call in _calls(path):
                name, where = _name(call), f"{path.relative_to(REPO_ROOT)}:{call.lineno}"
                keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
                if name.endswith("torch.load") and keywords.get("weights_only") != "True":
                    offences.append(f"{where}: {name} without weights_only=True")
                if re.fullmatch(r"(pickle|cPickle|dill|marshal|joblib|cloudpickle)\.loads?", name):
                    offences.append(f"{where}: {name}")
                if name in ("yaml.load", "yaml.load_all") and "Safe" not in keywords.get("Loader", "") \
                        and "UniqueKeyLoader" not in keywords.get("Loader", ""):
                    offences.append(f"{where}: {name} with an unsafe loader")
                if name in ("yaml.unsafe_load", "yaml.full_load", "eval", "exec"):
                    offences.append(f"{where}: {name}")
    assert offences == []


def test_the_config_yaml_loader_is_a_safe_loader(tmp_path: Path) -> None:
    import yaml

    from gp_distributed import config_yaml

    assert issubclass(config_yaml.UniqueKeyLoader, yaml.SafeLoader)
    marker = tmp_path / "code-ran"
    with pytest.raises(yaml.constructor.ConstructorError, match="python/object"):
        yaml.load(f"!!python/object/apply:os.system ['touch {marker}']", Loader=config_yaml.UniqueKeyLoader)
    assert not marker.exists()


def test_every_shipped_cluster_file_keeps_token_auth_and_a_loopback_dashboard() -> None:
    cluster = REPO_ROOT / "cluster"
    texts = {path.name: path.read_text() for path in cluster.iterdir() if path.suffix in (".sh", ".yaml", ".md")}
    everything = "\n".join(texts.values()) + (REPO_ROOT / "README.md").read_text()
    assert not re.search(r"RAY_AUTH_MODE\s*[=:]\s*[\"']?(disabled|none|off)", everything, re.IGNORECASE)
    assert "export RAY_AUTH_MODE=token" in texts["local-head.sh"]
    assert "--dashboard-host=127.0.0.1" in texts["local-head.sh"]
    commands = re.sub(r"#.*", "", texts["ray-cluster.yaml"])  # head and worker start commands, not comments
    starts = re.findall(r"[^\n]*ray start[^\n]*", commands)
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token ray start" in line for line in starts), starts
    assert "--dashboard-host=127.0.0.1" in texts["ray-cluster.yaml"]
    assert re.search(r"authOptions:\s*\n\s*mode: token", texts["kuberay-rayjob.yaml"])
    # Inside a pod the dashboard must listen on the pod address for the Service; token auth guards it.
    assert "RAY_AUTH_TOKEN" not in re.sub(r"#.*", "", texts["kuberay-rayjob.yaml"])  # the token comes from a Secret


def test_credentials_never_reach_logged_params_or_saved_configs(tmp_path: Path) -> None:
    secret = "s3cr3t-pa55"
    config = load_config(None, [f"tracking.tracking_uri=http://alice:{secret}@mlflow.internal:5000"])
    assert secret not in config_to_yaml(config)
    assert "http://alice:***@mlflow.internal:5000" in config_to_yaml(config)
    store = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker.start(store, "security", "run", system_metrics=False)
    log_run_inputs(tracker, config, {"n_genes": 3})
    tracker.end()
    run = MlflowClient(store).get_run(tracker.run_id)
    assert secret not in repr(run.data.params) and secret not in repr(run.data.tags)
    artifacts = Path(MlflowClient(store).download_artifacts(tracker.run_id, "", str(tmp_path / "artifacts")))
    assert all(secret not in p.read_text() for p in artifacts.rglob("*") if p.is_file())
    assert redact_credentials("postgresql://u:p@db/x") == "postgresql://u:***@db/x"
