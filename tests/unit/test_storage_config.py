"""The config keys of running beyond one node: placement strategy, object-store storage paths."""

from pathlib import Path

import pytest

from gp_distributed.config import config_from_tree, is_storage_uri, load_config
from gp_distributed.errors import ConfigError
from gp_distributed.train.storage import split_uri


def test_placement_defaults_to_pack_and_takes_ray_strategies() -> None:
    assert load_config(None).scaling.placement_strategy == "PACK"
    assert load_config(None, ["scaling.placement_strategy=STRICT_SPREAD"]).scaling.placement_strategy == "STRICT_SPREAD"
    with pytest.raises(ConfigError, match=r"scaling\.placement_strategy: Input should be 'PACK'"):
        load_config(None, ["scaling.placement_strategy=spread-out"])


def test_storage_path_is_a_path_or_an_s3_uri_and_survives_the_trip_to_workers() -> None:
    assert load_config(None, ["train.storage_path=runs"]).train.storage_path == Path("runs")
    config = load_config(None, ["train.storage_path=s3://gp-runs/team/a"])
    assert config.train.storage_path == "s3://gp-runs/team/a" and is_storage_uri(config.train.storage_path)
    # Workers rebuild the config from its JSON dump: a URI stays a URI, a path a Path.
    assert config_from_tree(config.model_dump(mode="json"), "worker").train.storage_path == "s3://gp-runs/team/a"
    assert config_from_tree(load_config(None).model_dump(mode="json"), "worker").train.storage_path == Path("runs")
    assert split_uri("s3://gp-runs/team/a/") == ("gp-runs", "gp-runs/team/a")


@pytest.mark.parametrize("overrides, message", [
    (["train.storage_path=gs://bucket/runs"], r"train\.storage_path: 'gs://bucket/runs': only s3://"),
    (["train.storage_path=s3://Bad_Bucket/runs"], r"train\.storage_path: .*only s3://bucket"),
    (["train.storage_path=s3://gp-runs/x", "scaling.num_workers=0"], r"train\.storage_path: object storage needs Ray workers"),
])
def test_storage_uris_ray_cannot_use_are_refused_with_their_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
