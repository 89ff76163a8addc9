"""The model card says what the model is, how well it reads, whether it passes the gate, and where to
see whether it became the champion."""
from conftest import make_config

from tasks.reporting.model_card import model_card
from tasks.store import LocalStore


def test_the_card_names_data_metrics_champion_and_decision(tmp_path):
    cfg = make_config(LocalStore(tmp_path / "store"))
    meta = {"arch": "crnn", "height": 32, "width": 96, "max_length": 4, "alphabet": "0123456789", "shards": "abc"}
    metrics = {"full_accuracy": 0.9, "correct": 9, "test_images": 10, "full_accuracy_ci95": [0.6, 0.98],
               "char_accuracy": 0.95, "char_error_rate": 0.05,
               "champion": {"version": "20261128T020000", "full_accuracy": 0.8}}
    encoded = {"data_version": "v1", "splits": {"train": 30, "val": 5, "test": 10}}
    card = model_card(cfg, "20261129T000000", meta, metrics, encoded, {"epochs": 3, "seconds": 12.0}, True,
                      "it reads 90.0%")
    assert card.startswith("# Captcha model 20261129T000000")
    for line in ("Architecture: `crnn`, input 32x96 (set by the user), preprocessing `grey`", "Data version: `v1`",
                 "train 30, val 5, test 10",
                 "3 epochs in 12 s", "90.00% (9 of 10; 95% CI 60.00% - 98.00%)",
                 "Champion 20261128T020000 on the same test split: 80.00%", "Passes the gate: it reads 90.0%.",
                 "python -m tasks.registry show 20261129T000000"):
        assert line in card, line
    assert '"run_key"' not in card and '"store"' not in card
