"""Training as on GPU workers, in a new process (devices and the precision policy are fixed for a
process, so this one, a CPU worker, stays as it is): under a mirrored strategy, as on a worker with
several GPUs, here over two logical CPU devices; then under the mixed precision a GPU worker turns on,
with the model then published and read by a CPU worker (this process)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_config

from tasks.build_shards import build_shards
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest
from tasks.store import LocalStore

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import json, sys
import tensorflow as tf
from tasks.pipeline.config import PipelineConfig
from tasks.store import LocalStore
from tasks.train import train

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
results = {}
for how, settings, root in json.loads(sys.argv[1]):
    if how == "mirrored":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:  # after the mirrored training: the policy holds for models built from now on
        import keras
        keras.mixed_precision.set_global_policy("mixed_float16")
        strategy = None
    results[how] = train(PipelineConfig(**settings), LocalStore(root), strategy=strategy)
print("RESULT", json.dumps(results))
"""


@pytest.fixture(scope="module")
def trained_as_on_gpu_workers(tmp_path_factory) -> dict:
    """The train stage's results under a mirrored strategy (batch 4 per replica) and under
    mixed precision, each on a store of its own, from one new process: {how: (config, store, result)}."""
    runs = {}
    for how, settings in (("mirrored", dict(batch_size=4)), ("mixed_float16", {})):
        store = LocalStore(tmp_path_factory.mktemp(how) / "store")
        cfg = make_config(store, **settings)
        for stage in (ingest, encode_labels, build_shards):
            stage(cfg, store)
        runs[how] = (cfg, store)
    jobs = [(how, cfg.to_dict(), str(store.root)) for how, (cfg, store) in runs.items()]
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(jobs)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout.split("RESULT ", 1)[1])
    return {how: (*runs[how], results[how]) for how in runs}


def test_mirrored_training_scales_the_batch_with_the_replicas(trained_as_on_gpu_workers):
    _, store, result = trained_as_on_gpu_workers["mirrored"]
    assert result["replicas"] == 2 and result["global_batch_size"] == 8
    assert result["epochs"] == 1 and store.exists(result["model"])


def test_a_mixed_precision_model_is_published_and_read_on_cpu(trained_as_on_gpu_workers, tmp_path, capsys):
    from tasks.evaluate import evaluate
    from tasks.modelling.saving import load_model
    from tasks.publish import publish
    from tasks.serving.predict import main

    cfg, local_store, result = trained_as_on_gpu_workers["mixed_float16"]
    assert all(math.isfinite(v) for v in result["final"].values()), result["final"]
    local_store.download_file(result["model"], tmp_path / "model.keras")
    model = load_model(tmp_path / "model.keras")
    assert model.get_layer("logits").dtype_policy.name == "float32"
    assert {layer.dtype_policy.name for layer in model.layers} >= {"mixed_float16"}
    assert evaluate(cfg, local_store, tmp_path / "cache")["test_images"] > 0
    published = publish(cfg, local_store)
    assert published["onnx_uri"].endswith("model.onnx")
    images = sorted((local_store.root / "raw").iterdir())[:5]
    assert main(["--model", str(local_store.root), *map(str, images)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
