"""The parsed-ontology cache: a hit gives the same ontology without parsing; anything odd is a miss."""

from __future__ import annotations

import shutil
from pathlib import Path

import fastobo
import pytest

from gp_distributed.errors import InputError
from gp_distributed.ontology import cache as ontology_cache
from gp_distributed.ontology.obo import GO_NAMESPACE_ROOTS, Ontology, load_ontology

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "obo"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ontologies"


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fastobo.loads called on a cache hit")

    monkeypatch.setattr(fastobo, "loads", refuse)


def summary(ontology: Ontology) -> tuple:
    """Every public view of an ontology, for equality checks."""
    terms = ontology.terms
    return (
        terms, ontology.relations, ontology.data_version, ontology.roots(),
        [(ontology.name(t), ontology.namespace(t), ontology.parents(t), ontology.children(t), ontology.depth(t),
          sorted(ontology.ancestors(t))) for t in terms],
        [ontology.parents(t, relation) for t in terms for relation in ontology.relations],
    )  # fmt: skip


def test_second_load_reads_the_cache_and_equals_the_parse(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = FIXTURES / "go_mini.obo"
    roots = {"biological_process": "GO:0000001", "cellular_component": "GO:0000002"}
    parsed = load_ontology(path, ("is_a", "part_of"), namespace_roots=roots)
    assert len(list(cache_dir.glob("*.json"))) == 1
    no_parsing(monkeypatch)
    cached = load_ontology(path, ("is_a", "part_of"), namespace_roots=roots)
    assert summary(cached) == summary(parsed)
    with pytest.raises(AssertionError, match="fastobo.loads called"):  # other options: parsed, not served
        load_ontology(path, ("is_a", "part_of"), namespace_roots=GO_NAMESPACE_ROOTS)


def test_alt_ids_obsolete_and_replacements_survive_the_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = FIXTURES / "mini.obo"
    parsed = load_ontology(path)
    no_parsing(monkeypatch)
    cached = load_ontology(path)
    ids = set(parsed.terms) | parsed._stanzas.alternatives.keys() | parsed._stanzas.replaced_by.keys()
    assert parsed._stanzas.alternatives and parsed._stanzas.obsolete  # the fixture exercises both
    assert {i: cached.resolve(i) for i in ids} == {i: parsed.resolve(i) for i in ids}
    assert {i: cached.is_obsolete(i) for i in ids} == {i: parsed.is_obsolete(i) for i in ids}


def test_other_bytes_or_options_are_other_entries(cache_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "mini.obo"
    shutil.copy(FIXTURES / "mini.obo", path)
    first = load_ontology(path)
    path.write_text(path.read_text().replace("[Term]", "[Term]", 1) + "\n")  # same terms, other bytes
    load_ontology(path)
    load_ontology(path, ("is_a", "part_of"))
    assert len(list(cache_dir.glob("*.json"))) == 3
    assert summary(load_ontology(path)) == summary(first)


def test_a_damaged_entry_is_a_miss_and_is_rewritten(cache_dir: Path) -> None:
    path = FIXTURES / "mini.obo"
    parsed = load_ontology(path)
    (entry,) = cache_dir.glob("*.json")
    for damage in ('{"names": {', '{"names": 3}', "[]", ""):
        entry.write_text(damage)
        assert summary(load_ontology(path)) == summary(parsed)
        assert entry.read_text().startswith('{"names": {"')  # rewritten whole


def test_invalid_files_are_never_cached(cache_dir: Path) -> None:
    for name in ("cycle.obo", "dangling_parent.obo", "syntax_error.obo", "empty.obo"):
        with pytest.raises(InputError):
            load_ontology(FIXTURES / name)
    assert not cache_dir.exists() or not list(cache_dir.iterdir())


def test_empty_setting_turns_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ontology_cache.cache_directory() is None
    load_ontology(FIXTURES / "mini.obo")
    assert not list(tmp_path.iterdir())


def test_an_unwritable_cache_directory_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv("GP_CACHE_DIR", str(blocker))
    assert summary(load_ontology(FIXTURES / "mini.obo")) == summary(load_ontology(FIXTURES / "mini.obo"))


def test_default_location_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ontology_cache.cache_directory() == tmp_path / "gp_distributed" / "ontologies"
