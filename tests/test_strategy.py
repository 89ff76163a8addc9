"""Training under a mirrored strategy, as on a worker with several GPUs: here over two logical CPU
devices, in a process of its own (devices are fixed when TensorFlow starts)."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import make_config
from tasks.labels import encode_labels
from tasks.ingest import ingest
from tasks.shards import build_shards

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import json, sys
import tensorflow as tf
from tasks.config import PipelineConfig
from tasks.storage import LocalStore
from tasks.train import train

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
settings = json.loads(sys.argv[1])
store = LocalStore(sys.argv[2])
print("RESULT", json.dumps(train(PipelineConfig(**settings), store, strategy=strategy)))
"""


def test_mirrored_training_scales_the_batch_with_the_replicas(local_store, tmp_path):
    cfg = make_config(local_store, epochs=2, batch_size=4)
    ingest(cfg, local_store)
    encode_labels(cfg, local_store)
    build_shards(cfg, local_store)
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(cfg.to_dict()), str(local_store.root)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["replicas"] == 2 and result["global_batch_size"] == 8
    assert result["epochs"] == 2 and local_store.exists(result["model"])
