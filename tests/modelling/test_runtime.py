"""TensorFlow starts quietly: its unsuppressible C++ notices are filtered out, other stderr output is not."""
import subprocess
import sys

SCRIPT = """
import sys
from tasks.modelling.runtime import import_tensorflow, native_noise_filtered
tf = import_tensorflow()
with native_noise_filtered():
    print(tf.reduce_sum(tf.cast(tf.constant([1, 2]) > 1, tf.int32)).numpy(), file=sys.stderr)
    print("a real problem", file=sys.stderr, flush=True)
print("done")
"""


def test_tensorflow_starts_without_native_noise_and_keeps_real_messages():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr, done.stderr
    assert "a real problem" in done.stderr and "1" in done.stderr
