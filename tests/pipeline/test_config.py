import pytest

from tasks.pipeline.config import ConfigError, PipelineConfig


def test_params_build_a_config_with_defaults(tmp_path):
    cfg = PipelineConfig.from_params({"epochs": 3, "store": tmp_path.as_uri()}, run_key="20261129T020000")
    assert cfg.epochs == 3 and cfg.arch == "crnn" and cfg.store == tmp_path.as_uri()


@pytest.mark.parametrize("params, message", [
    ({"epochs": 0}, "epochs must be a whole number from 1"),
    ({"epochs": True}, "epochs must be a whole number"),
    ({"arch": "rnn"}, "arch 'rnn' is unknown"),
    ({"alphabet": "aab"}, "distinct characters"),
    ({"store": "ftp://x"}, "must be a file:// or s3:// URI"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "at least 10% of the data for training"),
    ({"min_accuracy": 1.5}, "min_accuracy must be a number in"),
    ({"force": "yes"}, "force must be true or false"),
    ({"colour": "red"}, "unknown setting"),
])
def test_bad_settings_name_what_is_wrong(params, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_params({"store": "file:///tmp/x", **params}, run_key="k")


def test_model_settings_ignore_where_data_comes_from():
    a = PipelineConfig(run_key="a", source="/x", store="file:///tmp/a")
    b = PipelineConfig(run_key="b", source="/y", store="file:///tmp/b", force=True)
    assert a.model_settings() == b.model_settings()
    assert a.model_settings() != PipelineConfig(run_key="a", store="file:///tmp/a", epochs=3).model_settings()
    # Only the gate's floor changed: nothing to train again.
    assert a.model_settings() == PipelineConfig(run_key="a", store="file:///tmp/a", min_accuracy=0.9).model_settings()


def test_allow_lists_limit_where_a_run_reads_and_writes(tmp_path, monkeypatch):
    landing, models = tmp_path / "landing", tmp_path / "models"
    monkeypatch.setenv("CAPTCHA_ALLOWED_SOURCES", f"s3://captchas/in, {landing}/, synthetic://")
    monkeypatch.setenv("CAPTCHA_ALLOWED_STORES", f"{models.as_uri()},s3://models")
    for source in ("s3://captchas/in/2026", str(landing / "night1"), "synthetic://?count=10"):
        for store in (models.as_uri(), (models / "team").as_uri(), "s3://models/prod"):
            PipelineConfig(run_key="k", source=source, store=store)
    for source in ("s3://captchas/input", str(landing / ".." / "elsewhere"), "/etc", "s3://other/in"):
        with pytest.raises(ConfigError, match=f"source '{source}' is not under a location this deployment allows"):
            PipelineConfig(run_key="k", source=source, store=models.as_uri())
    for store in ((tmp_path / "models-old").as_uri(), (models / ".." / "x").as_uri(), "s3://models-2/x"):
        with pytest.raises(ConfigError, match="CAPTCHA_ALLOWED_STORES"):
            PipelineConfig(run_key="k", source="synthetic://?count=10", store=store)
