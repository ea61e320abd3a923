"""Shared test setup: CPU DeepSpeed, Ray token auth, where the real bundle and demo data live."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Before any deepspeed / ray import in the test process and the workers it starts.
# DeepSpeed's accelerator: CUDA where a GPU is visible (the gpu-marked tests), else the CPU one.
os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keeps a local Ray on 127.0.0.1 (launcher.py)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A test that forgets to set a tracking URI must never write into the checkout's ./mlflow.db.
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp(prefix='gp-mlflow-')}/mlflow.db"
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["GP_CACHE_DIR"] = tempfile.mkdtemp(prefix="gp-cache-")  # never the user's parsed-ontology cache

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "data" / "demo"
BUNDLE_DIR = REPO_ROOT.parent / "shared" / "data" / "hpo-human-2025"


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """The real 3,807-gene HPO bundle beside the checkout; tests using it skip where it is absent."""
    if not (BUNDLE_DIR / "genes_to_phenotype.txt.gz").is_file():
        pytest.skip(f"real bundle not found at {BUNDLE_DIR} (it lives in ../shared beside the checkout)")
    return BUNDLE_DIR


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO_DIR


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped demo data ingested once per test session (real HPO genes, protein)."""
    from gp_distributed.config import load_config
    from gp_distributed.ingest.pipeline import run_ingest

    out = tmp_path_factory.mktemp("demo") / "demo_store.zarr"
    config = load_config(REPO_ROOT / "configs" / "demo.yaml", typed_values={"ingest.out": out})
    inputs = {name: REPO_ROOT / getattr(config.ingest, name) for name in (
        "fasta", "id_map", "labels", "ontology", "go", "go_ontology", "exclusive_pairs")}
    run_ingest(config.ingest.model_copy(update=inputs), show_progress=False)
    return out


def corrupted_store_copy(store: Path, out: Path) -> Path:
    """A copy of `store` at `out` with one byte flipped in every residue shard, so the first residue read
    fails its CRC32C check whatever order a stream reads shards in."""
    shutil.copytree(store, out)
    for shard in (out / "seq" / "residues" / "c").iterdir():
        data = bytearray(shard.read_bytes())
        data[len(data) // 3] ^= 0xFF
        shard.write_bytes(bytes(data))
    return out


def tiny_training_overrides(store: Path, storage: Path, run_name: str, max_steps: int) -> list[str]:
    """A few-second training run on the demo store: tiny protein preset, short windows, small batches."""
    return [
        f"data.store={store}", f"train.storage_path={storage}", f"train.run_name={run_name}",
        f"train.max_steps={max_steps}", "train.warmup_steps=1", "train.micro_batch_size=2",
        "train.eval_every=1000", f"train.ckpt_every={max(max_steps // 2, 1)}", "data.max_seq_len_tokens=64",
        "data.shuffle_buffer_genes=16", "model.mlp_hidden_dim=32",
        "tracking.enabled=false",  # tests that track set their own temporary tracking URI
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` skip, with the reason, where no CUDA device is visible."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
