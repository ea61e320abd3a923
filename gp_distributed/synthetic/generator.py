"""A SYNTHETIC mouse-knockout dataset in real file layouts, with labels planted so the task is learnable.

Nothing here is real biology: gene, allele, genotype, phenotype and GO ids are made up (MGI:90xxxxx..
MGI:92xxxxx, MP:99xxxxx, GO:99xxxxx; only the ontology roots carry real ids). Files written to `out_dir`:

| file | layout |
|---|---|
| `synthetic_genes.fasta` | DNA FASTA, header `>SYNSEQnnnnnn SYMBOL synthetic`, 60 nt per line |
| `synthetic_MGI_GenePheno.rpt` | MGI `MGI_GenePheno.rpt`: 8 tab-separated columns, no header |
| `synthetic_go_annotations.gaf` | GAF 2.2 (`!gaf-version: 2.2`, 17 columns, relation qualifiers) |
| `synthetic_mp.obo` / `synthetic_go.obo` | OBO 1.2 ontologies: the fixed trees `MP_TERMS` / `GO_TERMS` |
| `synthetic_id_map.tsv` | `gene_id<TAB>symbol<TAB>fasta_id` (MGI marker id -> FASTA id) |
| `synthetic_truth.tsv` | `gene_id<TAB>term_id<TAB>motif`: the planted direct phenotype terms |
| `README.md` | this rule, the counts and the command |

Generative rule (all draws from `random.Random`, seeded by `seed`; gene i's own draws by "seed:i"):
1. Driver terms are the MP terms at depth >= 2 (37 of the 42 live terms). Each driver t gets a distinct
   random 12-nt motif m(t), a prevalence p(t) ~ U(0.04, 0.16) and a linked GO term go(t) (a seeded
   choice among the GO terms at depth >= 2).
2. Gene i draws each driver t with probability p(t); of an opposite pair (`MP_OPPOSITE_PAIRS`) only
   the first drawn is kept; at most 6 terms are kept; a gene that drew none gets one driver (weights p).
3. Its sequence: 200-5000 nt (log-uniform) of uniform ACGT; sometimes lowercase (soft-masked) runs,
   an N run, or single IUPAC codes (RYSWKMBDHV). Each planted term's motif is written in upper case
   1x (sequence < 1000 nt) or 1-3x at non-overlapping positions; every accidental occurrence of another
   driver's motif (case-insensitive) is then mutated away. So, exactly: motif m(t) occurs in gene i
   iff t is planted in gene i, and after propagation a term is positive iff the motif of it or of one
   of its descendants occurs.
4. Labels: every planted term appears in a homozygous targeted genotype `Sym<tm1Syn>/Sym<tm1Syn>`;
   some genes also have heterozygous (`Sym<tm1Syn>/Sym<+>`), compound (`tm1Syn`/`tm2Syn`) or gene trap
   (`Sym<Gt(OSTn)Lex>`) genotypes carrying subsets of the same terms. About 5% of genes have gene trap
   genotypes only (`gene_trap_only`): a targeted-only filter drops them and leaves every other gene's
   term set unchanged. Rows of the term with an alt_id (`MP_ALT_ID`) use the alt_id for about half of
   the genes; the truth always holds primary ids.
5. GO: each planted term t adds go(t) with probability 0.8 (evidence IDA, IMP, IGI or ISO; IMP/IGI are
   mutant-phenotype evidence, i.e. label leakage), plus 1-3 background annotations (IEA, IBA, ISS) to
   random GO terms; about 5% of genes get one `NOT|...` annotation to a random term.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gp_distributed.synthetic.ontologies import (
    GO_TERMS,
    MP_ALT_ID,
    MP_OBSOLETE,
    MP_OPPOSITE_PAIRS,
    MP_ROOT,
    MP_TERMS,
)

MOTIF_LENGTH_NT = 12
MAX_TERMS_PER_GENE = 6
MAX_GENES = 20000  # id ranges (MGI:9000000 + i, ...) stay disjoint below this


FASTA_NAME = "synthetic_genes.fasta"
LABELS_NAME = "synthetic_MGI_GenePheno.rpt"
GAF_NAME = "synthetic_go_annotations.gaf"
MP_OBO_NAME = "synthetic_mp.obo"
GO_OBO_NAME = "synthetic_go.obo"
ID_MAP_NAME = "synthetic_id_map.tsv"
TRUTH_NAME = "synthetic_truth.tsv"

_BACKGROUNDS = ("involves: 129S4/SvJae * C57BL/6J", "involves: 129P2/OlaHsd * C57BL/6", "C57BL/6NTac",
                "either: (involves: 129S1/Sv * 129X1/SvJ) or (involves: 129S1/Sv * 129X1/SvJ * C57BL/6J)")
_ASPECT = {"biological_process": "P", "molecular_function": "F", "cellular_component": "C"}
_IUPAC_AMBIGUOUS = "RYSWKMBDHV"
_FASTA_LINE_NT = 60


def _depths(parents: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Shortest number of edges from each term up to a root (a term without parents); `parents` is a DAG."""
    depth: dict[str, int] = {}

    def visit(term: str) -> int:
        if term not in depth:
            depth[term] = 1 + min(map(visit, parents[term])) if parents[term] else 0
        return depth[term]

    for term in parents:
        visit(term)
    return depth


_MP_DEPTH = _depths({term: parents for term, _, parents in MP_TERMS})
_GO_PARENTS = {go_id: is_a + part_of for go_id, _, _, is_a, part_of in GO_TERMS}
_GO_DEPTH = _depths(_GO_PARENTS)
_GO_NAMESPACE = {go_id: namespace for go_id, _, namespace, _, _ in GO_TERMS}
DRIVER_TERMS: tuple[str, ...] = tuple(term for term, _, _ in MP_TERMS if _MP_DEPTH[term] >= 2)
_GO_LINKABLE = tuple(go_id for go_id, *_ in GO_TERMS if _GO_DEPTH[go_id] >= 2)
_GO_NON_ROOT = tuple(go_id for go_id, *_ in GO_TERMS if _GO_DEPTH[go_id] >= 1)
_OPPOSITE = {a: b for a, b in MP_OPPOSITE_PAIRS} | {b: a for a, b in MP_OPPOSITE_PAIRS}


@dataclass(frozen=True)
class GoAnnotation:
    """One planted GAF row of a gene: term, evidence code, and whether it carries the NOT qualifier."""

    go_id: str
    evidence: str
    negated: bool = False


@dataclass(frozen=True)
class SyntheticDataset:
    """Paths written by `make_synthetic` and the planted truth (gene ids are MGI marker ids).

    `phenotypes[g]`: planted direct MP terms of gene g (primary ids, before propagation);
    `motifs[t]`, `go_links[t]`: motif and linked GO term of driver term t;
    `go_annotations[g]`: every GAF row of gene g, NOT rows included (`negated`).
    """

    out_dir: Path
    fasta: Path
    labels: Path
    gaf: Path
    mp_obo: Path
    go_obo: Path
    id_map: Path
    truth: Path
    readme: Path
    gene_ids: tuple[str, ...]
    symbols: Mapping[str, str]
    fasta_ids: Mapping[str, str]
    sequences: Mapping[str, str]
    phenotypes: Mapping[str, tuple[str, ...]]
    gene_trap_only: frozenset[str]
    motifs: Mapping[str, str]
    go_links: Mapping[str, str]
    go_annotations: Mapping[str, tuple[GoAnnotation, ...]]


def make_synthetic(out_dir: Path, n_genes: int, seed: int) -> SyntheticDataset:
    """Write the synthetic dataset of `n_genes` genes into `out_dir` (created); same seed, same bytes.

    Raises ValueError unless 1 <= n_genes <= MAX_GENES.
    """
    if not 1 <= n_genes <= MAX_GENES:
        raise ValueError(f"n_genes must be in 1..{MAX_GENES}, got {n_genes}")
    plan_rng = random.Random(f"{seed}:plan")
    motifs: dict[str, str] = {}
    for term in DRIVER_TERMS:
        motif = "".join(plan_rng.choices("ACGT", k=MOTIF_LENGTH_NT))
        while motif in motifs.values():
            motif = "".join(plan_rng.choices("ACGT", k=MOTIF_LENGTH_NT))
        motifs[term] = motif
    prevalence = {term: plan_rng.uniform(0.04, 0.16) for term in DRIVER_TERMS}
    go_links = {term: plan_rng.choice(_GO_LINKABLE) for term in DRIVER_TERMS}
    fasta_numbers = list(range(1, n_genes + 1))
    plan_rng.shuffle(fasta_numbers)  # FASTA order and ids differ from the label ids on purpose

    gene_ids = tuple(f"MGI:{9_000_000 + index}" for index in range(n_genes))
    symbols = {gene_id: f"Syn{index + 1}" for index, gene_id in enumerate(gene_ids)}
    fasta_ids = {gene_id: f"SYNSEQ{number:06d}" for gene_id, number in zip(gene_ids, fasta_numbers)}
    sequences: dict[str, str] = {}
    phenotypes: dict[str, tuple[str, ...]] = {}
    go_annotations: dict[str, tuple[GoAnnotation, ...]] = {}
    gene_trap_only: set[str] = set()
    label_lines: list[str] = []
    gaf_lines = ["!gaf-version: 2.2", "!generated-by: gp_distributed.synthetic.generator", "!date-generated: 2025-01-01",
                 f"!SYNTHETIC annotations (seed {seed}), not real data"]  # fmt: skip
    for index, gene_id in enumerate(gene_ids):
        rng = random.Random(f"{seed}:{index}")
        terms = _draw_terms(rng, prevalence)
        phenotypes[gene_id] = terms
        sequences[gene_id] = _sequence(rng, terms, motifs)
        rows, trap_only = _label_rows(rng, index, gene_id, symbols[gene_id], terms)
        label_lines += ["\t".join(row) for row in rows]
        if trap_only:
            gene_trap_only.add(gene_id)
        go_annotations[gene_id] = _go_annotations(rng, terms, go_links)
        gaf_lines += [_gaf_line(rng, gene_id, symbols[gene_id], ann) for ann in go_annotations[gene_id]]

    out_dir.mkdir(parents=True, exist_ok=True)
    by_fasta_id = sorted(gene_ids, key=fasta_ids.__getitem__)
    fasta_lines = []
    for gene_id in by_fasta_id:
        fasta_lines.append(f">{fasta_ids[gene_id]} {symbols[gene_id]} synthetic")
        sequence = sequences[gene_id]
        fasta_lines += [sequence[i : i + _FASTA_LINE_NT] for i in range(0, len(sequence), _FASTA_LINE_NT)]
    id_lines = ["gene_id\tsymbol\tfasta_id"] + [f"{g}\t{symbols[g]}\t{fasta_ids[g]}" for g in gene_ids]
    truth_lines = ["gene_id\tterm_id\tmotif"] + [f"{g}\t{t}\t{motifs[t]}" for g in gene_ids for t in phenotypes[g]]
    dataset = SyntheticDataset(
        out_dir=out_dir,
        fasta=_write(out_dir / FASTA_NAME, fasta_lines),
        labels=_write(out_dir / LABELS_NAME, label_lines),
        gaf=_write(out_dir / GAF_NAME, gaf_lines),
        mp_obo=_write(out_dir / MP_OBO_NAME, _mp_obo_lines()),
        go_obo=_write(out_dir / GO_OBO_NAME, _go_obo_lines()),
        id_map=_write(out_dir / ID_MAP_NAME, id_lines),
        truth=_write(out_dir / TRUTH_NAME, truth_lines),
        readme=out_dir / "README.md",
        gene_ids=gene_ids,
        symbols=symbols,
        fasta_ids=fasta_ids,
        sequences=sequences,
        phenotypes=phenotypes,
        gene_trap_only=frozenset(gene_trap_only),
        motifs=motifs,
        go_links=go_links,
        go_annotations=go_annotations,
    )
    _write(dataset.readme, _readme_lines(dataset, seed, len(label_lines), len(gaf_lines) - 4))
    return dataset


def _draw_terms(rng: random.Random, prevalence: Mapping[str, float]) -> tuple[str, ...]:
    """Planted driver terms of one gene: independent draws, no opposite pair, 1..MAX_TERMS_PER_GENE."""
    kept: list[str] = []
    for term in DRIVER_TERMS:
        if rng.random() < prevalence[term] and _OPPOSITE.get(term) not in kept:
            kept.append(term)
    if not kept:
        kept = rng.choices(DRIVER_TERMS, weights=[prevalence[t] for t in DRIVER_TERMS])
    return tuple(kept[:MAX_TERMS_PER_GENE])


def _sequence(rng: random.Random, terms: tuple[str, ...], motifs: Mapping[str, str]) -> str:
    """DNA of one gene: background with soft-masking / N / IUPAC noise, planted motifs, no other motif."""
    length = int(math.exp(rng.uniform(math.log(200), math.log(5000))))
    bases = rng.choices("ACGT", k=length)
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 2)):
            start = rng.randrange(length)
            end = min(length, start + rng.randint(20, 200))
            bases[start:end] = [base.lower() for base in bases[start:end]]
    if rng.random() < 0.15:
        start = rng.randrange(length)
        end = min(length, start + rng.randint(10, 100))
        bases[start:end] = ["N"] * (end - start)
    if rng.random() < 0.05:
        for _ in range(rng.randint(1, 3)):
            bases[rng.randrange(length)] = rng.choice(_IUPAC_AMBIGUOUS)
    # Motifs go into slots of MOTIF_LENGTH_NT + 1, so two planted motifs never touch: any other
    # motif occurrence then covers at least one unplanted base that can be mutated.
    slot = MOTIF_LENGTH_NT + 1
    copies = [term for term in terms for _ in range(1 if length < 1000 else rng.randint(1, 3))]
    planted = [False] * length
    for term, slot_index in zip(copies, rng.sample(range(length // slot), len(copies))):
        start = slot_index * slot
        bases[start : start + MOTIF_LENGTH_NT] = motifs[term]
        planted[start : start + MOTIF_LENGTH_NT] = [True] * MOTIF_LENGTH_NT
    absent = [motif for term, motif in motifs.items() if term not in terms]
    dirty = True
    while dirty:
        dirty = False
        upper = "".join(bases).upper()
        for motif in absent:
            position = upper.find(motif)
            while position >= 0:
                site = rng.choice([p for p in range(position, position + MOTIF_LENGTH_NT) if not planted[p]])
                new = rng.choice([base for base in "ACGT" if base != bases[site].upper()])
                bases[site] = new if bases[site].isupper() else new.lower()
                dirty = True
                position = upper.find(motif, position + 1)
    return "".join(bases)


def _label_rows(
    rng: random.Random, index: int, gene_id: str, symbol: str, terms: tuple[str, ...]
) -> tuple[list[list[str]], bool]:
    """MGI_GenePheno rows (8 fields) of one gene and whether its genotypes are all gene traps."""
    allele_id, genotype_id = 9_100_000 + 3 * index, 9_200_000 + 4 * index
    tm1 = (f"{symbol}<tm1Syn>", f"MGI:{allele_id}")
    tm2 = (f"{symbol}<tm2Syn>", f"MGI:{allele_id + 1}")
    trap = (f"{symbol}<Gt(OST{10_000 + index})Lex>", f"MGI:{allele_id + 2}")
    use_alt_id = rng.random() < 0.5
    trap_only = rng.random() < 0.05
    genotypes: list[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]] = []
    if trap_only:
        genotypes.append((f"{trap[0]}/{trap[0]}", (trap,), terms))
    else:
        genotypes.append((f"{tm1[0]}/{tm1[0]}", (tm1,), terms))
        if rng.random() < 0.3:
            genotypes.append((f"{tm1[0]}/{symbol}<+>", (tm1,), _subset(rng, terms)))
        if rng.random() < 0.1:
            genotypes.append((f"{tm1[0]}/{tm2[0]}", (tm1, tm2), _subset(rng, terms)))
        if rng.random() < 0.15:
            genotypes.append((f"{trap[0]}/{trap[0]}", (trap,), _subset(rng, terms)))
    rows = []
    for offset, (composition, alleles, genotype_terms) in enumerate(genotypes):
        background = rng.choice(_BACKGROUNDS)
        for term in genotype_terms:
            written = MP_ALT_ID[1] if use_alt_id and term == MP_ALT_ID[0] else term
            pubmed = "" if rng.random() < 0.1 else str(rng.randint(10_000_000, 39_999_999))
            symbols, ids = "|".join(a[0] for a in alleles), "|".join(a[1] for a in alleles)
            genotype = f"MGI:{genotype_id + offset}"
            rows.append([composition, symbols, ids, background, written, pubmed, gene_id, genotype])
    return rows, trap_only


def _subset(rng: random.Random, terms: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty random subset of `terms`, in their order."""
    chosen = set(rng.sample(terms, rng.randint(1, len(terms))))
    return tuple(term for term in terms if term in chosen)


def _go_annotations(
    rng: random.Random, terms: tuple[str, ...], go_links: Mapping[str, str]
) -> tuple[GoAnnotation, ...]:
    """Linked annotations of the planted terms, background annotations, and sometimes one NOT row."""
    annotations = [
        GoAnnotation(go_links[term], rng.choices(("IDA", "IMP", "IGI", "ISO"), weights=(4, 3, 1, 2))[0])
        for term in terms
        if rng.random() < 0.8
    ]
    for _ in range(rng.randint(1, 3)):
        annotations.append(GoAnnotation(rng.choice(_GO_NON_ROOT), rng.choice(("IEA", "IBA", "ISS"))))
    if rng.random() < 0.05:
        annotations.append(GoAnnotation(rng.choice(_GO_NON_ROOT), rng.choice(("IDA", "IMP")), negated=True))
    return tuple(annotations)


def _gaf_line(rng: random.Random, gene_id: str, symbol: str, annotation: GoAnnotation) -> str:
    """One GAF 2.2 row (17 tab-separated columns) with a relation qualifier matching the aspect."""
    aspect = _ASPECT[_GO_NAMESPACE[annotation.go_id]]
    in_complex = "GO:9900310" in _ancestors(annotation.go_id)
    relation = {"P": "involved_in", "F": "enables", "C": "part_of" if in_complex else "located_in"}[aspect]
    qualifier = f"NOT|{relation}" if annotation.negated else relation
    evidence = annotation.evidence
    reference = {"IEA": "GO_REF:0000002", "IBA": "GO_REF:0000033", "ISS": "GO_REF:0000024",
                 "ISO": "GO_REF:0000096"}  # fmt: skip
    with_from = {"IEA": f"InterPro:IPR{rng.randint(1, 99999):06d}", "IBA": f"PANTHER:PTN{rng.randint(1, 9999999):09d}",
                 "ISS": f"UniProtKB:P{rng.randint(10000, 99999)}", "ISO": f"UniProtKB:Q{rng.randint(10000, 99999)}",
                 "IGI": f"MGI:MGI:{rng.randint(9_000_000, 9_000_000 + MAX_GENES - 1)}"}  # fmt: skip
    experimental_reference = f"MGI:MGI:{rng.randint(9_300_000, 9_399_999)}|PMID:{rng.randint(10_000_000, 39_999_999)}"
    columns = ["MGI", gene_id, symbol, qualifier, annotation.go_id, reference.get(evidence, experimental_reference),
               evidence, with_from.get(evidence, ""), aspect, f"synthetic gene {symbol}", "", "protein_coding_gene",
               "taxon:10090", "20250101", "MGI", "", ""]  # fmt: skip
    return "\t".join(columns)


def _ancestors(go_id: str) -> set[str]:
    """`go_id` and every GO term above it over is_a and part_of."""
    return {go_id}.union(*map(_ancestors, _GO_PARENTS[go_id]))


def _mp_obo_lines() -> list[str]:
    """OBO 1.2 text of the synthetic MP: MP_TERMS, the alt_id of MP_ALT_ID and the obsolete MP_OBSOLETE."""
    names = {term: name for term, name, _ in MP_TERMS}
    lines = ["format-version: 1.2", "data-version: synthetic-mp/1", "ontology: synthetic_mp",
             "remark: SYNTHETIC ontology by gp_distributed.synthetic.generator; not the Mammalian Phenotype Ontology"]
    for term, name, parents in MP_TERMS:
        lines += ["", "[Term]", f"id: {term}", f"name: {name}", "namespace: MPheno.ontology"]
        lines += [f"alt_id: {MP_ALT_ID[1]}"] if term == MP_ALT_ID[0] else []
        lines += [f"is_a: {parent} ! {names[parent]}" for parent in parents]
    obsolete_id, obsolete_name, replaced_by = MP_OBSOLETE
    lines += ["", "[Term]", f"id: {obsolete_id}", f"name: {obsolete_name}", "namespace: MPheno.ontology",
              "is_obsolete: true", f"replaced_by: {replaced_by}"]  # fmt: skip
    return lines


def _go_obo_lines() -> list[str]:
    """OBO 1.2 text of the synthetic GO: GO_TERMS with their is_a and part_of edges, and the part_of typedef."""
    names = {go_id: name for go_id, name, *_ in GO_TERMS}
    lines = ["format-version: 1.2", "data-version: synthetic-go/1", "ontology: synthetic_go",
             "remark: SYNTHETIC ontology written by gp_distributed.synthetic.generator; not the Gene Ontology"]  # fmt: skip
    for go_id, name, namespace, is_a, part_of in GO_TERMS:
        lines += ["", "[Term]", f"id: {go_id}", f"name: {name}", f"namespace: {namespace}"]
        lines += [f"is_a: {parent} ! {names[parent]}" for parent in is_a]
        lines += [f"relationship: part_of {parent} ! {names[parent]}" for parent in part_of]
    lines += ["", "[Typedef]", "id: part_of", "name: part of", "xref: BFO:0000050", "is_transitive: true"]
    return lines


def _readme_lines(dataset: SyntheticDataset, seed: int, n_label_rows: int, n_gaf_rows: int) -> list[str]:
    """README of the written folder: what is synthetic, the counts, the rule (from this module's docstring)."""
    rule = __doc__[__doc__.index("Generative rule") :].rstrip()
    n_planted = sum(len(terms) for terms in dataset.phenotypes.values())
    return [
        "# SYNTHETIC dataset (not real data)",
        "",
        f"Written by `gp_distributed.synthetic.generator.make_synthetic` for {len(dataset.gene_ids)} genes, seed {seed}:",
        "",
        "```",
        f".venv/bin/python tools/make_synthetic.py --out OUT_DIR --genes {len(dataset.gene_ids)} --seed {seed}",
        "```",
        "",
        "Every id, name, sequence and annotation here is made up; only the file layouts are real.",
        "",
        f"- `{FASTA_NAME}`: {len(dataset.gene_ids)} DNA sequences (FASTA ids differ from label ids:"
        f" see `{ID_MAP_NAME}`)",
        f"- `{LABELS_NAME}`: {n_label_rows} rows in the MGI_GenePheno.rpt layout (8 columns, no header)",
        f"- `{GAF_NAME}`: {n_gaf_rows} GAF 2.2 rows",
        f"- `{MP_OBO_NAME}`: {len(MP_TERMS)} live terms under {MP_ROOT}, one alt_id, one obsolete term",
        f"- `{GO_OBO_NAME}`: {len(GO_TERMS)} terms under the three GO roots, is_a and part_of",
        f"- `{TRUTH_NAME}`: {n_planted} planted (gene, direct term, motif) rows;"
        f" {len(dataset.gene_trap_only)} genes have gene trap genotypes only",
        "",
        "## " + rule,
        "",
    ]


def _write(path: Path, lines: list[str]) -> Path:
    """Write `lines` joined by LF with a final LF (UTF-8, same bytes on every OS); return `path`."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return path
