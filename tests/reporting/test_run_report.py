"""The report `make run` prints: where the model and its plots are, or why there is no new model."""
from conftest import make_config

from tasks.pipeline.records import write_stage_result
from tasks.reporting.run_report import describe, main
from tasks.registry import LATEST
from tasks.store import LocalStore


def test_describe_points_at_the_model_and_its_plots():
    text = describe({"version": "v1", "model_uri": "file:///s/models/v1/model.keras", "onnx_uri": "o",
                     "model_card": "c", "latest": "l", "promoted": False, "reason": "below the floor",
                     "full_accuracy": 0.5, "char_accuracy": 0.75, "plots": ["p1.png", "p2.png"]})
    assert "model         : file:///s/models/v1/model.keras" in text
    assert "latest pointer: l (unchanged: below the floor)" in text
    assert "accuracy      : 50.0% of test captchas fully right, 75.0% of characters" in text
    assert text.count("plot          :") == 2


def test_a_run_that_ended_early_names_the_model_in_use(tmp_path, capsys):
    store = LocalStore(tmp_path / "store")
    cfg = make_config(store)
    store.put_json(LATEST, {"model": "models/v0/model.keras", "metrics": {"full_accuracy": 0.97}})
    write_stage_result(store, cfg.run_key, "ingest", {"up_to_date": "nothing new"})
    assert main(["--store", store.uri, "--run-key", cfg.run_key]) == 0
    out = capsys.readouterr().out
    assert "nothing new" in out and f"{store.uri}/models/v0/model.keras" in out and "97.0%" in out


def test_a_run_that_failed_says_so(tmp_path, capsys):
    store = LocalStore(tmp_path / "store")
    assert main(["--store", store.uri, "--run-key", "nothing"]) == 1
    assert "the run did not publish a model" in capsys.readouterr().err
