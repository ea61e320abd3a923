"""The fixed ontologies of the SYNTHETIC dataset (see synthetic.py): a small MP-like tree with opposite
sibling pairs, an alt_id and an obsolete term, and a GO-like DAG with part_of edges. Made-up ids.
"""

from __future__ import annotations

MP_ROOT = "MP:0000001"
GO_ROOTS = {"GO:0008150": "biological_process", "GO:0003674": "molecular_function", "GO:0005575": "cellular_component"}

# (id, name, is_a parents): a fixed DAG of depth 4 (MP:9900223 has two parents).
MP_TERMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (MP_ROOT, "mammalian phenotype", ()),
    ("MP:9900100", "abnormal alpha system phenotype", (MP_ROOT,)),
    ("MP:9900110", "abnormal alpha organ morphology", ("MP:9900100",)),
    ("MP:9900111", "increased alpha organ size", ("MP:9900110",)),
    ("MP:9900112", "decreased alpha organ size", ("MP:9900110",)),
    ("MP:9900113", "alpha organ cyst", ("MP:9900110",)),
    ("MP:9900120", "abnormal alpha system physiology", ("MP:9900100",)),
    ("MP:9900121", "abnormal alpha hormone level", ("MP:9900120",)),
    ("MP:9900122", "increased alpha hormone level", ("MP:9900121",)),
    ("MP:9900123", "decreased alpha hormone level", ("MP:9900121",)),
    ("MP:9900124", "alpha system hyperactivity", ("MP:9900120",)),
    ("MP:9900125", "alpha system hypoactivity", ("MP:9900120",)),
    ("MP:9900200", "abnormal beta system phenotype", (MP_ROOT,)),
    ("MP:9900210", "abnormal beta tissue morphology", ("MP:9900200",)),
    ("MP:9900211", "beta cell macrocytosis", ("MP:9900210",)),
    ("MP:9900212", "beta cell microcytosis", ("MP:9900210",)),
    ("MP:9900213", "abnormal beta tissue vasculature", ("MP:9900210",)),
    ("MP:9900214", "increased beta vessel density", ("MP:9900213",)),
    ("MP:9900215", "decreased beta vessel density", ("MP:9900213",)),
    ("MP:9900220", "abnormal beta system physiology", ("MP:9900200",)),
    ("MP:9900221", "elevated beta enzyme activity", ("MP:9900220",)),
    ("MP:9900222", "reduced beta enzyme activity", ("MP:9900220",)),
    ("MP:9900223", "abnormal alpha-beta signaling", ("MP:9900120", "MP:9900220")),
    ("MP:9900300", "abnormal gamma system phenotype", (MP_ROOT,)),
    ("MP:9900310", "abnormal gamma behavior", ("MP:9900300",)),
    ("MP:9900311", "abnormal gamma locomotion", ("MP:9900310",)),
    ("MP:9900312", "increased gamma locomotion", ("MP:9900311",)),
    ("MP:9900313", "decreased gamma locomotion", ("MP:9900311",)),
    ("MP:9900314", "gamma circling", ("MP:9900310",)),
    ("MP:9900320", "abnormal gamma survival", ("MP:9900300",)),
    ("MP:9900321", "gamma prenatal lethality", ("MP:9900320",)),
    ("MP:9900322", "gamma postnatal lethality", ("MP:9900320",)),
    ("MP:9900400", "abnormal delta system phenotype", (MP_ROOT,)),
    ("MP:9900410", "abnormal delta cell number", ("MP:9900400",)),
    ("MP:9900411", "increased delta cell number", ("MP:9900410",)),
    ("MP:9900412", "decreased delta cell number", ("MP:9900410",)),
    ("MP:9900420", "abnormal delta metabolism", ("MP:9900400",)),
    ("MP:9900421", "delta hyperglycemia", ("MP:9900420",)),
    ("MP:9900422", "delta hypoglycemia", ("MP:9900420",)),
    ("MP:9900423", "abnormal delta lipid level", ("MP:9900420",)),
    ("MP:9900424", "high delta lipid level", ("MP:9900423",)),
    ("MP:9900425", "low delta lipid level", ("MP:9900423",)),
)
# Sibling pairs named as opposites (increased/decreased, hyper/hypo, macro/micro, elevated/reduced,
# high/low): never planted together in one gene.
MP_OPPOSITE_PAIRS: tuple[tuple[str, str], ...] = (
    ("MP:9900111", "MP:9900112"), ("MP:9900122", "MP:9900123"), ("MP:9900124", "MP:9900125"),
    ("MP:9900211", "MP:9900212"), ("MP:9900214", "MP:9900215"), ("MP:9900221", "MP:9900222"),
    ("MP:9900312", "MP:9900313"), ("MP:9900411", "MP:9900412"), ("MP:9900421", "MP:9900422"),
    ("MP:9900424", "MP:9900425"),
)  # fmt: skip
MP_ALT_ID = ("MP:9900122", "MP:9900199")  # (primary id, its alt_id)
MP_OBSOLETE = ("MP:9900999", "obsolete abnormal alpha gland", "MP:9900110")  # (id, name, replaced_by)


_BP, _MF, _CC = "biological_process", "molecular_function", "cellular_component"
# (id, name, namespace, is_a parents, part_of parents): depth 3 below each root, part_of edges included.
GO_TERMS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("GO:0008150", "biological_process", _BP, (), ()),
    ("GO:9900100", "synthetic signaling", _BP, ("GO:0008150",), ()),
    ("GO:9900101", "synthetic alpha signaling pathway", _BP, ("GO:9900100",), ()),
    ("GO:9900102", "synthetic alpha receptor signaling", _BP, ("GO:9900101",), ()),
    ("GO:9900103", "synthetic alpha ligand processing", _BP, ("GO:9900100",), ("GO:9900102",)),
    ("GO:9900104", "synthetic beta kinase cascade", _BP, ("GO:9900100",), ()),
    ("GO:9900110", "synthetic developmental process", _BP, ("GO:0008150",), ()),
    ("GO:9900111", "synthetic organ development", _BP, ("GO:9900110",), ()),
    ("GO:9900112", "synthetic alpha organ development", _BP, ("GO:9900111",), ()),
    ("GO:9900113", "synthetic alpha organ morphogenesis", _BP, ("GO:9900110",), ("GO:9900112",)),
    ("GO:9900114", "synthetic gamma neuron development", _BP, ("GO:9900111",), ()),
    ("GO:9900120", "synthetic metabolic process", _BP, ("GO:0008150",), ()),
    ("GO:9900121", "synthetic lipid metabolic process", _BP, ("GO:9900120",), ()),
    ("GO:9900122", "synthetic delta lipid biosynthesis", _BP, ("GO:9900121",), ()),
    ("GO:9900123", "synthetic glucose import", _BP, ("GO:9900120",), ()),
    ("GO:0003674", "molecular_function", _MF, (), ()),
    ("GO:9900200", "synthetic binding", _MF, ("GO:0003674",), ()),
    ("GO:9900201", "synthetic hormone binding", _MF, ("GO:9900200",), ()),
    ("GO:9900202", "synthetic alpha hormone binding", _MF, ("GO:9900201",), ()),
    ("GO:9900210", "synthetic catalytic activity", _MF, ("GO:0003674",), ()),
    ("GO:9900211", "synthetic kinase activity", _MF, ("GO:9900210",), ()),
    ("GO:9900212", "synthetic beta kinase activity", _MF, ("GO:9900211",), ()),
    ("GO:9900213", "synthetic delta lipase activity", _MF, ("GO:9900210",), ()),
    ("GO:0005575", "cellular_component", _CC, (), ()),
    ("GO:9900300", "synthetic cellular anatomical structure", _CC, ("GO:0005575",), ()),
    ("GO:9900301", "synthetic organelle", _CC, ("GO:9900300",), ()),
    ("GO:9900302", "synthetic alpha granule", _CC, ("GO:9900301",), ()),
    ("GO:9900303", "synthetic alpha granule membrane", _CC, ("GO:9900304",), ("GO:9900302",)),
    ("GO:9900304", "synthetic membrane", _CC, ("GO:9900300",), ()),
    ("GO:9900310", "synthetic protein-containing complex", _CC, ("GO:0005575",), ()),
    ("GO:9900311", "synthetic beta receptor complex", _CC, ("GO:9900310",), ("GO:9900304",)),
    ("GO:9900312", "synthetic gamma channel complex", _CC, ("GO:9900311",), ()),
)
