"""The served model end to end on real components: a model trained in-process (DeepSpeed, world of one),
logged from code to a real sqlite MLflow store in a temporary directory, registered as `candidate`;
then, in a fresh Python process, `mlflow.pyfunc.load_model("models:/NAME@candidate")` predicts what
the training path's own evaluation predicts. `gp predict` and evaluation on new files go through the
same registry URI."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from gp_distributed.commands.evaluate import run_new_data_evaluation
from gp_distributed.commands.explain import run_explain
from gp_distributed.commands.predict import run_predict
from gp_distributed.commands.train import FinishedRun, run_training
from gp_distributed.config import load_config
from gp_distributed.data.store import GeneStore, open_store
from gp_distributed.evaluation.cafa_format import read_cafa_predictions
from gp_distributed.evaluation.scoring import score_split
from gp_distributed.inference.new_data import LabelInputs
from gp_distributed.inference.new_genes import GeneInputs
from gp_distributed.inference.package import Predictor
from gp_distributed.tracking.tracker import MlflowTracker

from ..conftest import DEMO_DIR, tiny_training_overrides

pytestmark = pytest.mark.integration

MODEL_NAME = "genepheno-serving-test"
CANDIDATE_URI = f"models:/{MODEL_NAME}@candidate"


@dataclass(frozen=True)
class Served:
    root: Path
    store: GeneStore
    test_genes: np.ndarray
    reference: np.ndarray  # (N, C) the training path's predictions of the test split
    finished: FinishedRun
    training_metrics: dict


@pytest.fixture(scope="module")
def served(demo_store: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        uri = f"sqlite:///{root}/mlflow.db"
        env.setenv("MLFLOW_TRACKING_URI", uri)
        overrides = [*tiny_training_overrides(demo_store, root / "runs", "serve", 2), "scaling.num_workers=0",
                     "train.micro_batch_size=8",  # fewer, larger evaluation batches: faster on 2 cores
                     "tracking.enabled=true", f"tracking.tracking_uri={uri}", "tracking.experiment=serving-test",
                     f"tracking.registered_model_name={MODEL_NAME}"]
        # The whole path: the worker logs to MLflow, the driver reports, logs and registers the model.
        result = run_training(load_config(None, overrides))
        finished = result.finished
        assert finished is not None
        store = open_store(demo_store)
        test_genes = store.split_indices("test")
        reference = Predictor.from_checkpoint(result.checkpoint_dir, demo_store).predict_store(store, test_genes).probabilities
        yield Served(root, store, test_genes, reference, finished, result.metrics)


def test_end_of_training_logs_report_and_registers_the_model(served: Served) -> None:
    finished = served.finished
    assert finished.registration.version == "1" and finished.registration.promoted  # first version: champion
    client = MlflowClient(finished.tracking_uri)
    logged = {a.path for a in client.list_artifacts(finished.run_id, "report")}
    assert logged == {f"report/{name}" for name in ("report.json", "bin_metrics.png", "precision_recall.png",
                                                    "concept_heatmap.png", "training_curves.png")}
    for path in finished.report.files:
        assert path.stat().st_size > 0
    results = finished.report.results
    assert set(results) == {"genepheno", "naive"}
    # The report scores the checkpoint as the training loop's own final test evaluation did.
    assert results["genepheno"]["all"]["auc"] == pytest.approx(served.training_metrics["test/all/auc"], abs=1e-6)
    assert client.get_run(finished.run_id).data.metrics["baseline/naive/all/fmax"] == pytest.approx(
        results["naive"]["all"]["fmax"])
    assert any(line.startswith("look at it: mlflow ui --backend-store-uri sqlite:///")
               for line in finished.summary_lines())


def _input_table(served: Served) -> pd.DataFrame:
    store = served.store
    records = [store.gene(int(i)) for i in served.test_genes]
    go_terms = [";".join(store.go_input_ids[j] for j in r.go_input) for r in records]
    go_terms[0] = ";".join([go_terms[0], "GO:9999999"]).strip(";")  # unknown to the model: reported, ignored
    return pd.DataFrame({"sequence": [r.sequence.decode().lower() for r in records], "go_terms": go_terms})


def test_pyfunc_in_a_fresh_process_predicts_what_the_trained_model_predicts(served: Served) -> None:
    table_path, scores_path, extra_path = (served.root / name for name in ("in.json", "p.npy", "extra.json"))
    _input_table(served).to_json(table_path, orient="records")
    script = textwrap.dedent("""
        import sys
        import mlflow
        import numpy as np
        import pandas as pd
        model = mlflow.pyfunc.load_model(sys.argv[1])
        out = model.predict(pd.read_json(sys.argv[2], orient="records"), params={"top_terms": 4})
        np.save(sys.argv[3], np.array(out["probabilities"].tolist(), dtype=np.float64))
        out[["top_predictions", "unknown_go_terms"]].to_json(sys.argv[4], orient="records")
    """)
    subprocess.run([sys.executable, "-c", script, CANDIDATE_URI, str(table_path), str(scores_path), str(extra_path)],
                   check=True, cwd=served.root, env=dict(os.environ), timeout=300)
    served_scores = np.load(scores_path)
    assert served_scores.shape == served.reference.shape
    assert np.abs(served_scores - served.reference).max() <= 1e-6
    extra = json.loads(extra_path.read_text())
    assert extra[0]["unknown_go_terms"] == "GO:9999999" and extra[1]["unknown_go_terms"] == ""
    top = json.loads(extra[0]["top_predictions"])
    assert len(top) == 4
    order = np.argsort(-served_scores[0], kind="stable")[:4]
    assert [t["term"] for t in top] == [served.store.label_ids[j] for j in order]
    for concept in top[0]["concepts"]:
        assert concept["contribution"] == pytest.approx(concept["weight"] * concept["activation"], rel=1e-5)


def test_gp_predict_from_the_registry_writes_tsv_and_cafa(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{served.root}/mlflow.db")
    store, genes = served.store, served.test_genes[:5]
    fasta, go = served.root / "few.fasta", served.root / "few_go.tsv"
    records = [store.gene(int(i)) for i in genes]
    fasta.write_text("".join(f">{r.gene_id} test gene\n{r.sequence.decode()}\n" for r in records))
    go.write_text("gene\tgo\n" + "".join(f"{r.gene_id}\t{store.go_input_ids[j]}\n" for r in records for j in r.go_input))
    tsv, cafa = served.root / "out" / "pred.tsv", served.root / "out" / "pred.cafa"
    summary = run_predict(CANDIDATE_URI, GeneInputs(fasta, go=go, go_format="tsv"), tsv, cafa=cafa,
                          min_probability=0.0, show_progress=False)
    ids = [r.gene_id for r in records]
    assert summary.genes == 5 and summary.tsv_rows == summary.cafa_rows == 5 * len(store.label_ids)
    written = read_cafa_predictions(cafa, ids, store.label_ids).values
    assert np.abs(written - served.reference[:5]).max() <= 1e-6
    table = pd.read_csv(tsv, sep="\t", dtype={"gene": str, "term": str, "name": str, "probability": float})
    assert list(table.columns) == ["gene", "term", "name", "probability"]
    first = table[table.gene == ids[0]]
    assert first.probability.is_monotonic_decreasing and first.iloc[0].probability == written[0].max()


@pytest.mark.parametrize("with_go_ontology", [True, False])
def test_predict_from_the_raw_files_equals_evaluate(served: Served, with_go_ontology: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`gp predict` on the raw demo files (FASTA, id map, gene2go with its direct annotations, optionally
    the GO ontology) processes GO like ingest did (evidence filter, closure under is_a/part_of), so every
    store gene scores exactly as `gp evaluate` scores it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{served.root}/mlflow.db")
    inputs = GeneInputs(DEMO_DIR / "proteins.fasta.gz", id_map=DEMO_DIR / "gene_ids.tsv", go=DEMO_DIR / "gene2go.gz",
                        go_format="gene2go", go_ontology=DEMO_DIR / "go-basic.obo.gz" if with_go_ontology else None)
    cafa = served.root / "out" / f"raw_{with_go_ontology}.cafa"
    run_predict(CANDIDATE_URI, inputs, served.root / "out" / f"raw_{with_go_ontology}.tsv", cafa=cafa,
                min_probability=0.0, show_progress=False)
    ids = [served.store.gene(int(i)).gene_id for i in served.test_genes]
    written = read_cafa_predictions(cafa, ids, served.store.label_ids).values
    assert np.abs(written - served.reference).max() <= 1e-6


def test_new_data_is_scored_with_the_model_vocabularies(served: Served) -> None:
    store = served.store
    records = [store.gene(int(i)) for i in served.test_genes]
    fasta, labels, go = (served.root / name for name in ("new.fasta", "new_labels.tsv", "new_go.tsv"))
    fasta.write_text("".join(f">{r.gene_id}\n{r.sequence.decode()}\n" for r in records))
    go.write_text("".join(f"{r.gene_id}\t{store.go_input_ids[j]}\n" for r in records for j in r.go_input))
    outside = "HP:0000006"  # autosomal dominant inheritance: a real HP term outside the model's vocabulary
    assert outside not in store.label_ids
    rows = [f"{r.gene_id}\t{store.label_ids[j]}" for r in records for j in r.labels]
    rows += [f"{records[0].gene_id}\t{outside}", f"{records[1].gene_id}\tHP:9999999", "NO_SUCH_GENE\tHP:0000118"]
    labels.write_text("gene\tterm\n" + "\n".join(rows) + "\n")
    report, plots = served.root / "new_report.json", served.root / "new_plots"
    evaluation = run_new_data_evaluation(
        CANDIDATE_URI, GeneInputs(fasta, go=go, go_format="tsv"), LabelInputs(labels, "tsv", DEMO_DIR / "hp.obo.gz"),
        tracking_uri=f"sqlite:///{served.root}/mlflow.db", report=report, plots_dir=plots, show_progress=False)
    assert evaluation.gene_ids == [r.gene_id for r in records]
    np.testing.assert_array_equal(evaluation.y_true, store.multi_hot("labels", served.test_genes))
    assert np.abs(evaluation.y_score - served.reference).max() <= 1e-6
    reported = {reason: (u.count, u.examples) for reason, u in evaluation.unknown.items()}
    assert reported["label genes without a sequence (not scored)"] == (1, ["NO_SUCH_GENE"])
    assert reported["label terms unknown or obsolete in the ontology"] == (1, ["HP:9999999"])
    assert reported["label terms outside the model's vocabulary (known ancestors kept)"] == (1, [outside])
    written = json.loads(report.read_text())
    assert written["left_out"]["label genes without a sequence (not scored)"] == {"count": 1, "examples": ["NO_SUCH_GENE"]}
    assert {p.name for p in plots.iterdir()} == {"bin_metrics.png", "precision_recall.png"}
    expected = score_split(store, "test", served.reference)  # `gp evaluate` on the training store
    for subset, values in expected.items():
        assert evaluation.results[subset]["fmax"] == pytest.approx(values["fmax"], abs=1e-6), subset
        assert evaluation.results[subset]["auc"] == pytest.approx(values["auc"], abs=1e-6), subset
        assert evaluation.results[subset]["smin"] == pytest.approx(values["smin"], abs=1e-4), subset


def test_gp_explain_writes_tables_and_logs_them_to_the_run(served: Served) -> None:
    store, uri = served.store, served.finished.tracking_uri
    records = [store.gene(int(i)) for i in served.test_genes[:3]]
    fasta = served.root / "explain.fasta"
    fasta.write_text("".join(f">{r.gene_id}\n{r.sequence.decode()}\n" for r in records))
    tracker = MlflowTracker.attach(uri, served.finished.run_id)
    result = run_explain(CANDIDATE_URI, GeneInputs(fasta), served.root / "explain", tracking_uri=uri,
                         top_terms=4, top_concepts=2, min_probability=0.0, tracker=tracker, show_progress=False)
    assert result.genes == 3 and result.gene_rows == 3 * 4 * 2
    associations = pd.read_csv(result.association_table, sep="\t")
    assert len(associations) == len(store.concept_ids) * len(store.label_ids)
    logged = {a.path for a in MlflowClient(uri).list_artifacts(served.finished.run_id, "explain")}
    assert logged == {"explain/gene_explanations.tsv", "explain/concept_phenotype_associations.tsv",
                      "explain/concept_heatmap.png"}
