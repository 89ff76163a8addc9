"""Data: where images come from (sources), decoding and preprocessing them, synthetic captchas, labels
and splits, ingest's working catalog, the shard format, and the tf.data input pipeline."""
