"""Ontology loading, graph queries, gene counts, frequency bins and exclusive pairs.

Small hand-written OBOs live in tests/fixtures/obo; one test reads the real HPO release from the
shared data bundle and is skipped when that bundle is absent.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from gp_distributed.errors import InputError
from gp_distributed.ontology.exclusive_pairs import (
    mine_exclusive_pairs,
    read_exclusive_pairs_tsv,
)
from gp_distributed.ontology.obo import (
    Ontology,
    bin_labels,
    count_genes_per_term,
    frequency_bin,
    load_ontology,
    terms_with_min_genes,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "obo"
HPO_BUNDLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hpo-human-2025"


def t(number: int) -> str:
    return f"T:{number:07d}"


def g(number: int) -> str:
    return f"GO:{number:07d}"


def line_of(path: Path, text: str) -> int:
    """1-based line of the first line of `path` containing `text` (independent of the loader)."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def mini() -> Ontology:
    return load_ontology(FIXTURES / "mini.obo")


def test_terms_roots_and_metadata(mini: Ontology) -> None:
    assert mini.terms == tuple(t(i) for i in range(1, 17))
    assert len(mini) == 16
    assert mini.roots() == (t(1), t(15))
    assert mini.relations == ("is_a",)
    assert mini.data_version == "mini/2025-01-01"
    assert mini.name(t(5)) == "Macrocephaly"
    assert mini.namespace(t(3)) == "mini_phenotype"  # header default-namespace
    assert mini.namespace(t(16)) == "mini_inheritance"


def test_alt_ids_and_obsolete_terms_resolve(mini: Ontology) -> None:
    assert mini.resolve(t(3)) == t(3)
    assert mini.resolve(t(99)) == t(5)  # alt_id
    assert mini.resolve(t(20)) == t(5)  # obsolete, replaced_by
    assert mini.resolve(t(21)) is None  # obsolete, only `consider`
    assert mini.resolve("T:0000404") is None
    assert t(99) not in mini and t(20) not in mini and t(5) in mini
    assert mini.is_obsolete(t(21)) and not mini.is_obsolete(t(5))
    assert mini.name(t(99)) == "Macrocephaly"
    assert mini.name(t(21)) == "obsolete Odd head"
    with pytest.raises(KeyError):
        mini.parents(t(20))


def test_parents_children_ancestors_descendants_on_a_diamond(mini: Ontology) -> None:
    assert mini.parents(t(5)) == (t(3), t(4))
    assert mini.children(t(2)) == (t(3), t(4), t(7))
    assert mini.ancestors(t(7)) == {t(7), t(5), t(3), t(4), t(2), t(1)}
    assert mini.ancestors(t(7), include_self=False) == {t(5), t(3), t(4), t(2), t(1)}
    assert mini.ancestors(t(1)) == {t(1)}
    assert mini.descendants(t(4)) == {t(4), t(5), t(6), t(7), t(11)}
    below_head = {t(5), t(6), t(7), t(8), t(9), t(10), t(12), t(13), t(14)}
    assert mini.descendants(t(3), include_self=False) == below_head


def test_depth_is_the_shortest_path_to_a_root(mini: Ontology) -> None:
    depths = {term: mini.depth(term) for term in mini.terms}
    assert depths == {
        t(1): 0, t(2): 1, t(3): 2, t(4): 2, t(5): 3, t(6): 3,
        t(7): 2,  # is_a Macrocephaly (depth 3) but also is_a Phenotypic abnormality (depth 1)
        t(8): 3, t(9): 3, t(10): 3, t(11): 3, t(12): 3, t(13): 3, t(14): 3, t(15): 0, t(16): 1,
    }  # fmt: skip


def test_propagate_applies_the_true_path_rule(mini: Ontology) -> None:
    assert mini.propagate([t(7), t(16)]) == {t(7), t(5), t(3), t(4), t(2), t(1), t(16), t(15)}
    assert mini.propagate([]) == set()
    with pytest.raises(KeyError):
        mini.propagate([t(99)])  # alt ids must be resolved first


def test_go_part_of_relationships_and_namespace_roots() -> None:
    path = FIXTURES / "go_mini.obo"
    roots = {"biological_process": g(1), "cellular_component": g(2)}
    go = load_ontology(path, ("is_a", "part_of"), namespace_roots=roots)
    assert go.roots() == (g(1), g(2))
    assert go.parents(g(5)) == (g(4),)
    assert go.parents(g(5), "part_of") == (g(4),) and go.parents(g(5), "is_a") == ()
    assert go.parents(g(7)) == (g(1),)  # `regulates` is not loaded
    assert go.depth(g(5)) == 3
    assert go.ancestors(g(5)) == {g(5), g(4), g(3), g(2)}
    assert go.namespace(g(5)) == "cellular_component"

    is_a_only = load_ontology(path)
    assert is_a_only.roots() == (g(1), g(2), g(5))
    with pytest.raises(InputError) as caught:
        load_ontology(path, namespace_roots={"cellular_component": g(2)})
    assert caught.value.line == line_of(path, f"id: {g(5)}")
    assert "go_mini.obo" in str(caught.value) and g(5) in str(caught.value)
    with pytest.raises(InputError, match="root GO:0003674 of namespace molecular_function is not a term"):
        roots = {"biological_process": g(1), "cellular_component": g(2), "molecular_function": "GO:0003674"}
        load_ontology(path, ("is_a", "part_of"), namespace_roots=roots)


def test_gzip_input_equals_plain(tmp_path: Path, mini: Ontology) -> None:
    packed = tmp_path / "mini.obo.gz"
    packed.write_bytes(gzip.compress((FIXTURES / "mini.obo").read_bytes()))
    again = load_ontology(packed)
    assert again.terms == mini.terms
    assert [again.parents(term) for term in again.terms] == [mini.parents(term) for term in mini.terms]


@pytest.mark.parametrize(
    ("fixture", "marker", "words"),
    [
        ("dangling_parent.obo", "is_a: T:0000404", ["T:0000404", "T:0000003", "not a term"]),
        ("syntax_error.obo", "is_a T:0000001", ["syntax error"]),
    ],
)
def test_bad_file_names_file_and_line(fixture: str, marker: str, words: list[str]) -> None:
    path = FIXTURES / fixture
    with pytest.raises(InputError) as caught:
        load_ontology(path)
    message = str(caught.value)
    assert caught.value.line == line_of(path, marker)
    assert message.startswith(f"{path}:{caught.value.line}") and "\n" not in message
    for word in words:
        assert word in message


def test_cycle_names_its_terms_and_a_stanza_line() -> None:
    path = FIXTURES / "cycle.obo"
    with pytest.raises(InputError) as caught:
        load_ontology(path)
    message = str(caught.value)
    cycle = message.split("(child -> parent): ")[1].split(" -> ")
    assert set(cycle) == {t(2), t(3), t(4)} and cycle[0] == cycle[-1] and len(cycle) == 4
    assert caught.value.line in {line_of(path, f"id: {t(i)}") for i in (2, 3, 4)}


def test_empty_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"empty\.obo: file is empty"):
        load_ontology(FIXTURES / "empty.obo")
    truncated = tmp_path / "cut.obo.gz"
    truncated.write_bytes(gzip.compress((FIXTURES / "mini.obo").read_bytes())[:300])
    with pytest.raises(InputError, match=r"cut\.obo\.gz: truncated or corrupt gzip"):
        load_ontology(truncated)
    plain_named_gz = tmp_path / "plain.obo.gz"
    plain_named_gz.write_bytes((FIXTURES / "mini.obo").read_bytes())
    with pytest.raises(InputError, match="not gzip"):
        load_ontology(plain_named_gz)
    with pytest.raises(InputError, match="cannot read file"):
        load_ontology(tmp_path / "missing.obo")


def test_other_bad_inputs(tmp_path: Path) -> None:
    header = "format-version: 1.2\n\n[Term]\nid: T:0000001\nname: All\n\n"
    cases = {
        "latin1.obo": (header.encode() + b"[Term]\nid: T:0000002\nname: caf\xe9\n", 9, "UTF-8"),
        "duplicate.obo": (header.encode() + b"[Term]\nid: T:0000001\nname: again\n", 8, "duplicate"),
        "obsolete_parent.obo": (
            header.encode() + b"[Term]\nid: T:0000002\nis_obsolete: true\n\n"
            b"[Term]\nid: T:0000003\nis_a: T:0000002\n",
            13,
            "is obsolete",
        ),
        "dangling_part_of.obo": (
            header.encode() + b"[Term]\nid: T:0000002\nis_a: T:0000001\nrelationship: part_of T:0000009\n",
            10,
            "part_of parent T:0000009",
        ),
        "no_terms.obo": (b"format-version: 1.2\n", None, "no [Term] stanza"),
    }
    for name, (content, line, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError) as caught:
            load_ontology(path, ("is_a", "part_of"))
        assert caught.value.line == line, name
        assert name in str(caught.value) and words in str(caught.value), name


def test_parent_given_by_alt_id_is_mapped(tmp_path: Path) -> None:
    path = tmp_path / "alt_parent.obo"
    path.write_text("[Term]\nid: T:0000001\nalt_id: T:0000009\n\n[Term]\nid: T:0000002\nis_a: T:0000009\n")
    assert load_ontology(path).parents(t(2)) == (t(1),)


def test_gene_counts_and_min_genes() -> None:
    counts = count_genes_per_term({"g1": {"b", "a"}, "g2": {"a"}, "g3": set()})
    assert counts == {"a": 2, "b": 1} and list(counts) == ["a", "b"]
    assert terms_with_min_genes({"c": 5, "a": 2, "b": 1}, 2) == ["a", "c"]


def test_frequency_bins_and_labels() -> None:
    edges = (11, 31, 101, 301)
    counts = [0, 10, 11, 30, 31, 100, 101, 300, 301, 10_000]
    assert [frequency_bin(c, edges) for c in counts] == [-1, -1, 0, 0, 1, 1, 2, 2, 3, 3]
    assert bin_labels(edges) == ["11-30", "31-100", "101-300", ">=301"]
    assert bin_labels((5,)) == [">=5"]


def test_mine_exclusive_pairs_among_siblings(mini: Ontology) -> None:
    # Hypertelorism/Hypotelorism share no is_a parent; "Low forehead hairline" differs by two words.
    assert mine_exclusive_pairs(mini, reversed(mini.terms)) == [(t(5), t(6)), (t(8), t(9)), (t(12), t(13))]
    assert mine_exclusive_pairs(mini, [t(5), t(8), t(9), t(10), t(11)]) == [(t(8), t(9))]


def test_read_exclusive_pairs_tsv(tmp_path: Path, mini: Ontology) -> None:
    with_header = tmp_path / "pairs.tsv"
    with_header.write_text(
        "term_a_id\tterm_a_name\tterm_b_id\tterm_b_name\n"
        "T:0000006\tMicrocephaly\tT:0000005\tMacrocephaly\n"
        "\n"
        "T:0000099\tMacrocephaly (alt)\tT:0000006\tMicrocephaly\n"
        "T:0000020\tobsolete Big head\tT:0000009\tDecreased head circumference\n"
    )
    assert read_exclusive_pairs_tsv(with_header, mini) == [(t(5), t(6)), (t(5), t(9))]
    bare = tmp_path / "bare.tsv"
    bare.write_text("# comment\nT:0000008\tT:0000009\textra\n")
    assert read_exclusive_pairs_tsv(bare, mini) == [(t(8), t(9))]

    bad_rows = {
        "T:0000404\tT:0000005": "T:0000404 is not in the ontology",
        "T:0000021\tT:0000005": "obsolete without replacement",
        "T:0000099\tT:0000005": "same term",
        "T:0000005": "expected term ids",
    }
    for row, words in bad_rows.items():
        path = tmp_path / "bad.tsv"
        path.write_text(f"a_id\tb_id\nT:0000008\tT:0000009\n{row}\n")
        with pytest.raises(InputError) as caught:
            read_exclusive_pairs_tsv(path, mini)
        assert caught.value.line == 3 and f"{path}:3:" in str(caught.value), row
        assert words in str(caught.value), row


@pytest.mark.skipif(not HPO_BUNDLE.is_dir(), reason=f"shared HPO bundle not found at {HPO_BUNDLE}")
def test_real_hpo_release() -> None:
    hpo = load_ontology(HPO_BUNDLE / "hp.obo.gz")
    assert len(hpo) > 19_000 and hpo.roots() == ("HP:0000001",)
    assert hpo.data_version == "hp/releases/2025-01-16"
    assert "HP:0000118" in hpo.ancestors("HP:0001250")  # Seizure is a phenotypic abnormality
    assert hpo.name("HP:0001250") == "Seizure"
    assert hpo.depth("HP:0000001") == 0 and hpo.depth("HP:0000118") == 1 and hpo.depth("HP:0001250") == 4
    assert hpo.resolve("HP:0000624") == "HP:0000286"  # alt_id of Epicanthus
    assert hpo.resolve("HP:0000057") == "HP:0008665"  # obsolete Clitoromegaly, replaced_by

    pairs = mine_exclusive_pairs(hpo, hpo.terms)
    assert ("HP:0000316", "HP:0000601") in pairs  # Hypertelorism / Hypotelorism, siblings
    # Macrocephaly / Microcephaly share no direct is_a parent in this release, so they are not mined.
    assert not set(hpo.parents("HP:0000256")) & set(hpo.parents("HP:0000252"))
    assert ("HP:0000252", "HP:0000256") not in pairs
    tsv = HPO_BUNDLE / "hpo_opposite_pairs.tsv"
    with tsv.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    siblings = {tuple(sorted((r["term_a_id"], r["term_b_id"])))
                for r in rows if r["share_is_a_parent"] == "1"}
    assert len(siblings) == 303 and siblings <= set(pairs)
    assert len(read_exclusive_pairs_tsv(tsv, hpo)) == len(rows) == 325
