"""OBO ontologies (HP, MP, GO) as immutable DAGs: ancestors, depth, propagation, exclusive pairs.

The only module importing `fastobo`, the OBO parser chosen by `tools/bench_obo_parsers.py`
(numbers in docs/obo_parser_choice.md). Term ids are strings such as "HP:0000118"; every graph query
takes and returns primary ids of non-obsolete terms (map alt_id / replaced_by ids with `resolve`).
"""

from __future__ import annotations

import bisect
import graphlib
import gzip
import re
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import fastobo
from fastobo.header import DataVersionClause, DefaultNamespaceClause
from fastobo.term import (
    AltIdClause,
    IsAClause,
    IsObsoleteClause,
    NameClause,
    NamespaceClause,
    RelationshipClause,
    ReplacedByClause,
    TermFrame,
)

from gp_distributed.errors import InputError
from gp_distributed.ontology import cache as ontology_cache

GO_NAMESPACE_ROOTS: Mapping[str, str] = {
    "biological_process": "GO:0008150",
    "molecular_function": "GO:0003674",
    "cellular_component": "GO:0005575",
}
# One parser thread: in tools/bench_obo_parsers.py more threads never beat one (Python object
# building under the GIL dominates), see docs/obo_parser_choice.md.
_PARSER_THREADS = 1
_GZIP_MAGIC = b"\x1f\x8b"

_Edges = dict[str, tuple[str, ...]]


@dataclass
class _Stanzas:
    """What the [Term] stanzas of one file declare, before the graph checks."""

    names: dict[str, str] = field(default_factory=dict)  # obsolete terms included
    obsolete: set[str] = field(default_factory=set)
    alternatives: dict[str, str] = field(default_factory=dict)  # alt_id -> primary id
    replaced_by: dict[str, str] = field(default_factory=dict)  # obsolete id -> replacement id
    namespaces: dict[str, str] = field(default_factory=dict)
    default_namespace: str | None = None
    data_version: str | None = None


class Ontology:
    """Immutable view of the non-obsolete terms of one OBO file over its selected relations.

    Built by `load_ontology`, which guarantees that every parent is a non-obsolete term of the file
    and that the graph is acyclic. Ancestor and descendant sets are computed on first use and cached.
    Attributes: `terms` (sorted primary ids of non-obsolete terms), `relations`, `data_version`.
    """

    def __init__(self, stanzas: _Stanzas, parents_by_relation: Mapping[str, _Edges]):
        self._stanzas = stanzas
        self.relations: tuple[str, ...] = tuple(parents_by_relation)
        self.data_version = stanzas.data_version
        self._parents_by_relation = dict(parents_by_relation)
        self.terms: tuple[str, ...] = tuple(sorted(t for t in stanzas.names if t not in stanzas.obsolete))
        merged: dict[str, set[str]] = {t: set() for t in self.terms}
        children: dict[str, list[str]] = {t: [] for t in self.terms}
        for edges in self._parents_by_relation.values():
            for term_id, parents in edges.items():
                merged[term_id].update(parents)
        self._parents: _Edges = {t: tuple(sorted(ps)) for t, ps in merged.items()}
        for term_id, parents in self._parents.items():  # in sorted order, so children come out sorted
            for parent in parents:
                children[parent].append(term_id)
        self._children: _Edges = {t: tuple(cs) for t, cs in children.items()}
        self._roots = tuple(t for t in self.terms if not self._parents[t])
        self._depth = dict.fromkeys(self._roots, 0)
        queue = deque(self._roots)  # breadth-first from all roots at once: fewest edges to any root
        while queue:
            term_id = queue.popleft()
            for child in self._children[term_id]:
                if child not in self._depth:
                    self._depth[child] = self._depth[term_id] + 1
                    queue.append(child)
        self._ancestors: dict[str, frozenset[str]] = {}
        self._descendants: dict[str, frozenset[str]] = {}

    def __contains__(self, term_id: object) -> bool:
        """True for the primary id of a non-obsolete term (False for alt_ids and obsolete ids)."""
        return term_id in self._parents

    def __len__(self) -> int:
        return len(self.terms)

    def name(self, term_id: str) -> str:
        """Name of a term (obsolete and alt ids accepted); KeyError for an id the file never declares."""
        return self._stanzas.names[self._stanzas.alternatives.get(term_id, term_id)]

    def namespace(self, term_id: str) -> str | None:
        """The term's `namespace:`, else the header's `default-namespace:`, else None."""
        return self._stanzas.namespaces.get(term_id, self._stanzas.default_namespace)

    def is_obsolete(self, term_id: str) -> bool:
        """True for the primary id of a term marked `is_obsolete: true`."""
        return term_id in self._stanzas.obsolete

    def resolve(self, term_id: str) -> str | None:
        """Primary non-obsolete id for an id, alt_id, or obsolete id with `replaced_by`; else None."""
        seen: set[str] = set()
        current: str | None = term_id
        while current is not None and current not in self._parents:
            if current in seen:  # a replaced_by chain that loops leads nowhere
                return None
            seen.add(current)
            current = self._stanzas.alternatives.get(current) or self._stanzas.replaced_by.get(current)
        return current

    def parents(self, term_id: str, relation: str | None = None) -> tuple[str, ...]:
        """Direct parents (sorted) over all loaded relations, or over one of them."""
        if relation is None or term_id not in self._parents:
            return self._parents[term_id]
        return self._parents_by_relation[relation].get(term_id, ())

    def children(self, term_id: str) -> tuple[str, ...]:
        """Direct children (sorted) over all loaded relations."""
        return self._children[term_id]

    def roots(self) -> tuple[str, ...]:
        """Terms without parents over the loaded relations, sorted."""
        return self._roots

    def depth(self, term_id: str) -> int:
        """Length of the shortest path from the term up to a root (a root has depth 0)."""
        return self._depth[term_id]

    def ancestors(self, term_id: str, include_self: bool = True) -> frozenset[str]:
        """All terms reachable upwards over the loaded relations (cached)."""
        cache, parents = self._ancestors, self._parents
        stack = [term_id]  # iterative post-order: user ontologies may be deeper than the recursion limit
        while stack:
            current = stack[-1]
            if current not in cache:
                missing = [p for p in parents[current] if p not in cache]
                if missing:
                    stack.extend(missing)
                    continue
                cache[current] = frozenset((current,)).union(*(cache[p] for p in parents[current]))
            stack.pop()
        return cache[term_id] if include_self else cache[term_id] - {term_id}

    def descendants(self, term_id: str, include_self: bool = True) -> frozenset[str]:
        """All terms reachable downwards over the loaded relations (cached)."""
        found = self._descendants.get(term_id)
        if found is None:
            seen = {term_id}
            queue = deque((term_id,))
            while queue:
                for child in self._children[queue.popleft()]:
                    if child not in seen:
                        seen.add(child)
                        queue.append(child)
            found = self._descendants[term_id] = frozenset(seen)
        return found if include_self else found - {term_id}

    def propagate(self, term_ids: Iterable[str]) -> set[str]:
        """True-path rule: the given terms and all their ancestors. KeyError for a non-primary id."""
        propagated: set[str] = set()
        for term_id in term_ids:
            propagated |= self.ancestors(term_id)
        return propagated


def load_ontology(
    path: Path,
    relations: tuple[str, ...] = ("is_a",),
    *,
    namespace_roots: Mapping[str, str] | None = None,
) -> Ontology:
    """Load an .obo or .obo.gz file (gzip detected by content) over `relations`.

    `relations` must include "is_a"; other names select `relationship: NAME TERM` clauses (GO: use
    ("is_a", "part_of")). Obsolete terms keep their name, alt_ids and replaced_by (for `resolve`) but
    lose their edges; `consider` is ignored; a parent given by alt_id is mapped to its primary id.
    With `namespace_roots` (e.g. GO_NAMESPACE_ROOTS), every parentless term of a listed namespace
    must be that namespace's root, and every listed root must be a term.
    Raises InputError (one line, with the offending line when known) for unreadable, non-UTF-8 or
    truncated files, OBO syntax errors, files without terms, duplicate ids, parents that are not
    non-obsolete terms of the file, cycles and unexpected roots.
    A file that passed these checks once is read from the parsed-ontology cache the next time
    (ontology_cache.py: keyed by the file's bytes and these options; `GP_CACHE_DIR=` turns it off).
    """
    if "is_a" not in relations:
        raise ValueError(f"relations must include 'is_a', got {relations}")
    path = Path(path)
    raw = _read_bytes(path)
    key = ontology_cache.entry_key(raw, relations, namespace_roots)
    cached = ontology_cache.read_entry(key)
    if cached is not None:
        stanza_fields, parents_by_relation = cached
        return Ontology(_Stanzas(**stanza_fields), parents_by_relation)
    text = _decode(path, raw)
    try:
        doc = fastobo.loads(text, threads=_PARSER_THREADS)
    except SyntaxError as error:
        raise InputError(path, f"OBO syntax error: {error.msg}", error.lineno, error.offset) from None
    lines = _TermLines(text)
    stanzas, edges = _read_stanzas(doc, path, lines)
    if not stanzas.names:
        raise InputError(path, "file is empty" if not text.strip() else "no [Term] stanza in file")

    parents_by_relation: dict[str, _Edges] = {relation: {} for relation in relations}
    for term_id, term_edges in edges.items():
        for relation, parent in term_edges:
            by_term = parents_by_relation.get(relation)
            if by_term is None or term_id in stanzas.obsolete:
                continue
            target = stanzas.alternatives.get(parent, parent)
            if target not in stanzas.names or target in stanzas.obsolete:
                problem = "is obsolete" if target in stanzas.obsolete else "is not a term in this file"
                where = lines.clause_line(term_id, relation, parent)
                raise InputError(path, f"{relation} parent {parent} of {term_id} {problem}", where)
            if target not in by_term.get(term_id, ()):
                by_term[term_id] = (*by_term.get(term_id, ()), target)

    by_relation = parents_by_relation.values()
    graph = {t: [p for by_term in by_relation for p in by_term.get(t, ())] for t in stanzas.names}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        cycle = list(reversed(error.args[1]))  # graphlib lists parent before child; show child -> parent
        message = f"cycle over {'/'.join(relations)} (child -> parent): {' -> '.join(cycle)}"
        raise InputError(path, message, lines.line(cycle[0])) from None

    ontology = Ontology(stanzas, parents_by_relation)
    expected_roots = namespace_roots or {}
    for root in ontology.roots():
        namespace = ontology.namespace(root) or ""
        if namespace in expected_roots and root != expected_roots[namespace]:
            message = f"term {root} has no parent but {namespace}'s root is {expected_roots[namespace]}"
            raise InputError(path, message, lines.line(root))
    for namespace, root in expected_roots.items():
        if root not in ontology:
            raise InputError(path, f"root {root} of namespace {namespace} is not a term in this file")
    ontology_cache.write_entry(key, vars(stanzas), parents_by_relation)
    return ontology


def _read_stanzas(
    doc: fastobo.doc.OboDoc, path: Path, lines: _TermLines
) -> tuple[_Stanzas, dict[str, list[tuple[str, str]]]]:
    """Names, obsolescence, alt_ids, replacements, namespaces and raw edges (id -> [(relation, parent)])."""
    stanzas = _Stanzas()
    edges: dict[str, list[tuple[str, str]]] = {}
    for clause in doc.header:
        if type(clause) is DefaultNamespaceClause:
            stanzas.default_namespace = str(clause.namespace)
        elif type(clause) is DataVersionClause:
            stanzas.data_version = str(clause.version)
    for frame in doc:
        if type(frame) is not TermFrame:  # Typedef and Instance stanzas carry no term edges
            continue
        term_id = str(frame.id)
        if term_id in stanzas.names:
            # raised at the id's second stanza, the first one that is wrong
            raise InputError(path, f"duplicate [Term] id {term_id}", lines.line(term_id, occurrence=1))
        stanzas.names[term_id] = term_id  # a stanza without `name:` is named by its id
        term_edges = edges[term_id] = []
        for clause in frame:
            kind = type(clause)  # exact type tests: the cheapest dispatch over ~200k clauses
            if kind is IsAClause:
                term_edges.append(("is_a", str(clause.term)))
            elif kind is RelationshipClause:
                term_edges.append((str(clause.typedef), str(clause.term)))
            elif kind is NameClause:  # fastobo keeps the blanks before a `! comment` or the line end
                stanzas.names[term_id] = clause.name.strip()
            elif kind is AltIdClause:
                stanzas.alternatives[str(clause.alt_id)] = term_id
            elif kind is IsObsoleteClause and clause.obsolete:
                stanzas.obsolete.add(term_id)
            elif kind is ReplacedByClause:
                stanzas.replaced_by.setdefault(term_id, str(clause.term))
            elif kind is NamespaceClause:
                stanzas.namespaces[term_id] = str(clause.namespace)
    for primary in stanzas.names.keys() & stanzas.alternatives.keys():  # a primary id beats an alt_id
        del stanzas.alternatives[primary]
    return stanzas, edges


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; unreadable files and .gz names on other content become InputError."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(path, f"cannot read file: {error.strerror}") from None
    if path.suffix == ".gz" and raw[:2] != _GZIP_MAGIC:
        raise InputError(path, "file name ends in .gz but the content is not gzip data")
    return raw


def _decode(path: Path, raw: bytes) -> str:
    """File bytes as text, gunzipped when they are gzip; errors become InputError naming `path`."""
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise InputError(path, f"truncated or corrupt gzip data: {error}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise InputError(path, f"not UTF-8 text: {error.reason}", line) from None


class _TermLines:
    """Line numbers of `[Term]` stanzas' `id:` clauses, found by one regex pass over the text.

    Only built when an error needs a location, so successful loads never pay for it.
    """

    _PATTERN = re.compile(r"^[ \t]*\[(\w+)\]|^[ \t]*id:[ \t]*(\S+)", re.MULTILINE)  # fastobo allows indenting

    def __init__(self, text: str):
        self._text = text
        self._index: dict[str, list[int]] | None = None

    def line(self, term_id: str, occurrence: int = 0) -> int | None:
        """1-based line of the `id:` clause of the term's stanza (`occurrence` picks among duplicates)."""
        if self._index is None:
            self._index = {}
            in_term, line, position = False, 1, 0
            for match in self._PATTERN.finditer(self._text):
                line += self._text.count("\n", position, match.start())
                position = match.start()
                if match.group(1) is not None:
                    in_term = match.group(1) == "Term"
                elif in_term:
                    self._index.setdefault(match.group(2), []).append(line)
        found = self._index.get(term_id)
        return found[occurrence] if found and -len(found) <= occurrence < len(found) else None

    def clause_line(self, term_id: str, relation: str, parent: str) -> int | None:
        """Line of the `is_a:` / `relationship:` clause naming `parent` in the term's stanza."""
        start = self.line(term_id)
        if start is None:
            return None
        tag = "is_a:" if relation == "is_a" else rf"relationship:[ \t]+{re.escape(relation)}"
        clause = re.compile(rf"[ \t]*{tag}[ \t]+{re.escape(parent)}(?=[\s!{{]|$)")
        for offset, text_line in enumerate(self._text.split("\n")[start:]):
            if text_line.lstrip().startswith("["):
                break
            if clause.match(text_line):
                return start + offset + 1
        return start


def count_genes_per_term(gene_to_terms: Mapping[str, set[str]]) -> dict[str, int]:
    """Number of genes annotated to each term (a gene counts once per term), keys sorted by term id.

    Pass propagated annotations (`Ontology.propagate`) to count under the true-path rule.
    """
    counts = Counter(term for terms in gene_to_terms.values() for term in set(terms))
    return {term: counts[term] for term in sorted(counts)}


def terms_with_min_genes(counts: Mapping[str, int], min_genes: int) -> list[str]:
    """Term ids with at least `min_genes` genes, sorted by id."""
    return sorted(term for term, count in counts.items() if count >= min_genes)


def frequency_bin(count: int, edges: tuple[int, ...]) -> int:
    """Index of the bin holding `count`: bin i = [edges[i], edges[i+1]), the last bin = [edges[-1], inf).

    Returns -1 below edges[0]. Edges must be strictly increasing (checked by the config).
    """
    return bisect.bisect_right(edges, count) - 1


def bin_labels(edges: tuple[int, ...]) -> list[str]:
    """Human labels of the bins of `frequency_bin`: (11, 31, 101, 301) -> 11-30, 31-100, 101-300, >=301."""
    return [f"{low}-{high - 1}" for low, high in zip(edges, edges[1:])] + [f">={edges[-1]}"]
