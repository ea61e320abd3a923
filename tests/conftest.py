"""Shared test setup: CPU DeepSpeed, Ray token auth, where the real bundle and demo data live."""

import os
from pathlib import Path

import pytest

# Before any deepspeed / ray import in the test process and the workers it starts.
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
