"""Mutually exclusive phenotype pairs: mined by name among is_a siblings, or read from a user TSV.

They feed the exclusivity regulariser (softplus(s_i + s_j) over each pair); both sources are soft
constraints, since a gene linked to several diseases can carry both members of a pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from gp_distributed.errors import InputError
from gp_distributed.ontology.obo import Ontology

# Opposite words (whole words) and word prefixes: value = (rule, pole); see mine_exclusive_pairs.
_OPPOSITES = {
    "increased": ("increased/decreased", 0), "decreased": ("increased/decreased", 1),
    "elevated": ("elevated/reduced", 0), "reduced": ("elevated/reduced", 1),
    "high": ("high/low", 0), "low": ("high/low", 1),
    "hyper": ("hyper/hypo", 0), "hypo": ("hyper/hypo", 1),
    "macro": ("macro/micro", 0), "micro": ("macro/micro", 1),
}  # fmt: skip
_OPPOSITE_PREFIXES = ("hyper", "hypo", "macro", "micro")


def _opposite_keys(name: str) -> Iterator[tuple[tuple[str, ...], int]]:
    """For each word of the lower-cased name matching a rule: (the words with it abstracted, pole)."""
    words = name.lower().split()
    for i, word in enumerate(words):
        matched = word if word in _OPPOSITES else next(filter(word.startswith, _OPPOSITE_PREFIXES), None)
        if matched is not None:
            rule, pole = _OPPOSITES[matched]
            yield (*words[:i], f"<{rule}>{word[len(matched) :]}", *words[i + 1 :]), pole


def mine_exclusive_pairs(ontology: Ontology, term_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Candidate mutually exclusive pairs among `term_ids`, found by name among is_a siblings.

    Two terms pair when they share a direct is_a parent and their names, lower-cased and split on
    whitespace, differ in exactly one word, that word being opposite by one rule:
    whole words increased/decreased, elevated/reduced, high/low; or word prefixes hyper/hypo and
    macro/micro followed by the same rest of the word (hypertension/hypotension, macrocephaly/
    microcephaly). Returns sorted pairs, each ordered (smaller id first). KeyError for unknown ids.
    """
    poles: dict[tuple[str, tuple[str, ...]], tuple[set[str], set[str]]] = {}
    for term_id in set(term_ids):
        parents = ontology.parents(term_id, "is_a")
        for key, pole in _opposite_keys(ontology.name(term_id)):
            for parent in parents:
                poles.setdefault((parent, key), (set(), set()))[pole].add(term_id)
    pairs = {(min(a, b), max(a, b)) for first, second in poles.values() for a in first for b in second}
    return sorted(pairs)


_CURIE = re.compile(r"^[A-Za-z][\w.-]*:\S+$")


def read_exclusive_pairs_tsv(path: Path, ontology: Ontology) -> list[tuple[str, str]]:
    """Read user exclusive pairs from a tab-separated file, one pair of term ids a line.

    The first non-blank line is a header when its first column is not a CURIE; the ids are then read
    from the first two columns whose header ends in "id" (hpo_opposite_pairs.tsv: term_a_id,
    term_b_id), else from the first two columns. Blank lines and lines starting with '#' are skipped.
    Ids go through `Ontology.resolve` (alt_id, replaced_by). Returns sorted, deduplicated pairs, each
    ordered (smaller id first). Unknown or obsolete-without-replacement ids, missing columns and
    self-pairs raise InputError with the line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot read exclusive pairs: {error}") from None
    pairs: set[tuple[str, str]] = set()
    columns: list[int] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split("\t")]
        if columns is None:
            named = [i for i, field in enumerate(fields) if field.lower().endswith("id")]
            is_header = not _CURIE.match(fields[0])
            columns = named[:2] if is_header and len(named) >= 2 else [0, 1]
            if is_header:
                continue
        if len(fields) <= max(columns) or not all(fields[i] for i in columns):
            where = f"columns {columns[0] + 1} and {columns[1] + 1}"
            raise InputError(path, f"expected term ids in {where}", number)
        resolved = []
        for raw in (fields[i] for i in columns):
            term_id = ontology.resolve(raw)
            if term_id is None:
                obsolete = ontology.is_obsolete(raw)
                problem = "is obsolete without replacement" if obsolete else "is not in the ontology"
                raise InputError(path, f"term {raw} {problem}", number)
            resolved.append(term_id)
        a, b = resolved
        if a == b:
            raise InputError(path, f"both ids of the pair name the same term {a}", number)
        pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)
