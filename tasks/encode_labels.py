"""Stage 2, encode_labels: the alphabet (given, or read off the data), every label as ids, each
image's split, and the model's input size (given, or chosen from the images' shapes); written as the
encoded manifest that build_shards reads (encoded/<key>.jsonl) and this stage's summary."""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

from tasks.data.input_size import AspectRatios, choose_input_size, keep_earlier_width
from tasks.data.labels import SPLITS, Alphabet, LabelError, split_of
from tasks.pipeline.records import read_stage_result, write_stage_result

log = logging.getLogger(__name__)


def encode_labels(cfg, store, assign_split=None) -> dict:
    """Fix the alphabet, the split and the input size, and write the encoded manifest build_shards reads.

    cfg is a PipelineConfig and store an ObjectStore; returns the stage summary. `assign_split`, a
    function of a manifest entry, replaces the hash split (benchmarks use a published split). The
    manifest is streamed, twice at most: never held in memory.
    """
    ingested = read_stage_result(store, cfg.run_key, "ingest")
    manifest = ingested["manifest"]
    alphabet = Alphabet(cfg.alphabet) if cfg.alphabet else Alphabet.from_labels(
        entry["label"] for entry in store.iter_jsonl(manifest))
    counts, lengths, splits, aspects = dict.fromkeys(SPLITS, 0), set(), hashlib.sha256(), AspectRatios()
    with tempfile.TemporaryDirectory(prefix="encode-") as tmp:
        local = Path(tmp) / "encoded.jsonl"
        with open(local, "w") as out:
            for entry in store.iter_jsonl(manifest):
                split = (assign_split(entry) if assign_split
                         else split_of(entry["sha256"], cfg.val_fraction, cfg.test_fraction))
                ids = alphabet.encode(entry["label"])
                counts[split] += 1
                lengths.add(len(ids))
                aspects.add(entry["width"], entry["height"])
                splits.update(f"{entry['sha256']}\t{split}\n".encode())
                out.write(json.dumps({"sha256": entry["sha256"], "ext": entry["ext"], "label": entry["label"],
                                      "ids": ids, "split": split}, sort_keys=True) + "\n")
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            raise LabelError(f"the {' and '.join(empty)} split(s) got no image out of {sum(counts.values())}: "
                             "ingest more images or change val_fraction/test_fraction")
        split_rule = splits.hexdigest() if assign_split else f"{cfg.val_fraction}|{cfg.test_fraction}"
        settings = f"{ingested['data_version']}|{alphabet.chars}|{split_rule}"
        encoding = hashlib.sha256(settings.encode()).hexdigest()[:16]
        encoded_key = f"encoded/{encoding}.jsonl"
        if not store.exists(encoded_key):
            store.upload_file(local, encoded_key)
    champion = _champion_model(store) if cfg.warm_start else None
    framing = _framing(cfg, store, manifest, champion)
    size = choose_input_size(framing["aspects"] or aspects, max(lengths), cfg.height, cfg.width)
    if not cfg.width and champion:
        size = keep_earlier_width(size, champion[1], max(lengths), f"the champion {champion[0]['version']}")
    log.info("encode_labels: %d images, alphabet %r, input %dx%d (%s), preprocessing %s (%s)", sum(counts.values()),
             alphabet.chars, size["height"], size["width"], size["reason"], framing["preprocessing"],
             framing["reason"])
    return write_stage_result(store, cfg.run_key, "encode_labels", {
        "data_version": ingested["data_version"], "encoding": encoding, "encoded": encoded_key,
        "alphabet": alphabet.chars, "num_classes": alphabet.num_classes, "max_length": max(lengths),
        "label_lengths": sorted(lengths), "splits": counts, "split_rule": split_rule,
        "height": size["height"], "width": size["width"], "input_size": size["reason"],
        "preprocessing": framing["preprocessing"], "preprocessing_reason": framing["reason"],
    })


def _champion_model(store) -> tuple[dict, dict] | None:
    """(the champion, its model.json), or None: its width and framing are kept where they fit, so
    tonight can start warm."""
    from tasks.modelling.warm_start import champion_metadata

    champion, theirs, _ = champion_metadata(store)
    return (champion, theirs) if theirs else None


def _framing(cfg, store, manifest: str, champion: tuple[dict, dict] | None) -> dict:
    """The preprocessing this run uses and why (tasks.data.framing.choose_framing); `auto` keeps the
    champion's `text` or `ink`, so that the choice does not flip between nights."""
    from tasks.data.framing import choose_framing, sample_entries
    from tasks.data.images import decode_image

    setting, reason = cfg.preprocessing, ""
    theirs = champion[1].get("preprocessing") if champion else None
    if setting == "auto" and theirs in ("text", "ink"):
        setting, reason = theirs, f"the champion {champion[0]['version']}'s, kept for a warm start"
    images = [decode_image(store.get_bytes(f"raw/{entry['sha256']}.{entry['ext']}"))[0]
              for entry in sample_entries(store.iter_jsonl(manifest))] if setting in ("auto", "text") else []
    framing = choose_framing(images, setting)
    return {**framing, "reason": reason} if reason else framing
