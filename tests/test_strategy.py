"""Training as on GPU workers, each in a process of its own (devices and the precision policy are fixed
for a process): under a mirrored strategy, as on a worker with several GPUs, here over two logical
CPU devices; and under the mixed precision a GPU worker turns on, with the model then published and
read by a CPU worker (this process)."""
import json
import math
import subprocess
import sys
from pathlib import Path

from conftest import make_config

from tasks.build_shards import build_shards
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import json, sys
import tensorflow as tf
from tasks.pipeline.config import PipelineConfig
from tasks.store import LocalStore
from tasks.train import train

if sys.argv[3] == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    import keras
    keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = None
settings = json.loads(sys.argv[1])
store = LocalStore(sys.argv[2])
print("RESULT", json.dumps(train(PipelineConfig(**settings), store, strategy=strategy)))
"""


def train_in_a_process(cfg, store, how: str) -> dict:
    """The train stage's result, run in a new process on `how` ("mirrored" or "mixed_float16")."""
    ingest(cfg, store)
    encode_labels(cfg, store)
    build_shards(cfg, store)
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(cfg.to_dict()), str(store.root), how],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def test_mirrored_training_scales_the_batch_with_the_replicas(local_store):
    result = train_in_a_process(make_config(local_store, epochs=2, batch_size=4), local_store, "mirrored")
    assert result["replicas"] == 2 and result["global_batch_size"] == 8
    assert result["epochs"] == 2 and local_store.exists(result["model"])


def test_a_mixed_precision_model_is_published_and_read_on_cpu(local_store, tmp_path, capsys):
    from tasks.evaluate import evaluate
    from tasks.modelling.saving import load_model
    from tasks.publish import publish
    from tasks.serving.predict import main

    cfg = make_config(local_store)
    result = train_in_a_process(cfg, local_store, "mixed_float16")
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
