"""Base models: pretrained on synthetic captchas of many styles and published to a store as bases,
which training on a new style can start from (the `base` setting; tasks.train).

The `captcha_base_model` DAG (or `make base`) makes one: the pipeline's own stages (ingest,
encode_labels, build_shards, train, evaluate) on a `synthetic://?style=mixed` source
(tasks.data.synthetic: every image in a look of its own, text placed anywhere at any size or
touching its neighbours among them, labels of 3 to 8 characters of BASE_ALPHABET, a fifth with a
doubled character) in a work store of their own under bases/work/<run>/, so the synthetic images never
join the store's data set; then `publish_base` copies the model to bases/<version>/ with model.json
(input size, preprocessing, alphabet, architecture) and base.json (the source, the accuracy on
held-out synthetic captchas, the training time), points bases/latest.json at it and clears the work
store. Nothing is downloaded: the machine's fonts and the `captcha` package draw every image.
"""
from __future__ import annotations

import logging
import string
import tempfile
import time
from pathlib import Path

from tasks.pipeline.config import ConfigError, PipelineConfig
from tasks.pipeline.records import read_stage_result
from tasks.store import MissingObjectError, ObjectStore, check_key

log = logging.getLogger(__name__)

BASES = "bases/"
WORK = f"{BASES}work/"
LATEST_BASE = f"{BASES}latest.json"
BASE_RECORD = "base.json"
# Digits and both cases: a run's own alphabet is almost always a subset, so its head starts from
# the base's rows for its characters (tasks.modelling.warm_start.transfer_weights).
BASE_ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase
BASE_LENGTHS = "3-8"
# A doubled character in a fifth of the labels: CTC must learn the blank between two touching twins.
BASE_DOUBLES = 0.2
# The `base` setting: AUTO (the default) starts from the latest base where one fits, NO_BASE from scratch.
AUTO = "auto"
NO_BASE = ("", "none")


class BaseModelError(ConfigError):
    """A base named in the settings cannot be used; the message says which and what there is."""


def base_source(count: int, seed: int) -> str:
    """The synthetic source a base trains on."""
    return (f"synthetic://?style=mixed&count={count}&length={BASE_LENGTHS}&alphabet={BASE_ALPHABET}"
            f"&width=0&height=60&doubles={BASE_DOUBLES}&seed={seed}")


def base_prefix(version: str) -> str:
    """Folder of one published base."""
    return f"{BASES}{check_key(version)}/"


def work_store_uri(store_uri: str, run_key: str) -> str:
    """The store a base's stages run in: bases/work/<run key>/ of the store it is published to."""
    return f"{store_uri.rstrip('/')}/{WORK}{check_key(run_key)}"


def base_config(run_key: str, store_uri: str, images: int = 30_000, minutes: float = 45.0, seed: int = 0,
                **settings) -> PipelineConfig:
    """The settings a base trains with, in its work store: the pipeline's defaults but for the source,
    5% of the images for validation and 5% for testing, no warm start and no base. `settings` are other
    PipelineConfig values (the number of epochs, say)."""
    return PipelineConfig(run_key=run_key, source=base_source(images, seed), store=work_store_uri(store_uri, run_key),
                          seed=seed, max_train_minutes=minutes,
                          **{"val_fraction": 0.05, "test_fraction": 0.05, "warm_start": False, "base": "none",
                             **settings})


def publish_base(cfg: PipelineConfig, store: ObjectStore, work: ObjectStore) -> dict:
    """Copy the model the run `cfg` trained and evaluated in its work store `work` to bases/<version>/
    of `store` (its record last), move bases/latest.json to it and clear the work store; return the record."""
    from tasks.registry.versions import version_name

    run_key = cfg.run_key
    encoded, trained = read_stage_result(work, run_key, "encode_labels"), read_stage_result(work, run_key, "train")
    evaluated = read_stage_result(work, run_key, "evaluate")
    figures = {"source": cfg.source, "seed": cfg.seed, "splits": encoded["splits"], "epochs": trained["epochs"],
               "train_s": trained["seconds"], "test_images": evaluated["test_images"],
               "full_accuracy": evaluated["full_accuracy"], "char_accuracy": evaluated["char_accuracy"]}

    with tempfile.TemporaryDirectory(prefix="base-publish-") as tmp:
        local = Path(tmp) / "model.keras"
        work.download_file(f"runs/{run_key}/model.keras", local)
        version = version_name(run_key, local)
        prefix = base_prefix(version)
        store.upload_file(local, f"{prefix}model.keras")
    meta = work.get_json(f"runs/{run_key}/model.json")
    store.put_json(f"{prefix}model.json", meta)
    record = {"version": version, "model": f"{prefix}model.keras", "metadata": f"{prefix}model.json",
              "arch": meta["arch"], "height": meta["height"], "preprocessing": meta["preprocessing"],
              "alphabet": meta["alphabet"], "created_at": time.time(), **figures}
    store.put_json(f"{prefix}{BASE_RECORD}", record)
    store.put_json(LATEST_BASE, {"version": version})
    for key in list(work.list()):
        work.delete(key)
    log.info("base %s published to %s: %.1f%% of %d held-out synthetic captchas after %d epochs (%.0f s)", version,
             store.url(f"{prefix}{BASE_RECORD}"), 100 * figures["full_accuracy"], figures["test_images"],
             figures["epochs"], figures["train_s"])
    return record


def list_bases(store: ObjectStore) -> list[dict]:
    """The records of every published base, oldest first."""
    records = [store.get_json(key) for key in store.list(BASES)
               if key.count("/") == 2 and key.endswith(f"/{BASE_RECORD}")]
    return sorted(records, key=lambda r: (r.get("created_at", 0), r["version"]))


def read_base(store: ObjectStore, name: str) -> dict:
    """The record of the base `name` (a version, or `latest`); BaseModelError naming the published
    ones when there is no such base."""
    try:
        version = store.get_json(LATEST_BASE)["version"] if name == "latest" else name
        return store.get_json(f"{base_prefix(version)}{BASE_RECORD}")
    except MissingObjectError:
        known = [r["version"] for r in list_bases(store)]
        raise BaseModelError(
            f"base {name!r} is not in store {store.uri}; "
            + (f"published bases: {', '.join(known)} (or latest)" if known else
               "no base is published there yet: make one with the captcha_base_model DAG (`make base`)")
        ) from None


def resolve_base(cfg, store: ObjectStore) -> tuple[dict | None, str]:
    """(the record of the base this run starts from, or None; why). `auto` takes the latest base
    where one is published and fits the settings, `none` (or empty) takes none; a version or
    `latest` named explicitly is refused with BaseModelError when it is missing or does not fit."""
    if cfg.base in NO_BASE:
        return None, "no base asked for (base=none)"
    if cfg.base == AUTO:
        try:
            base = read_base(store, "latest")
        except BaseModelError:
            return None, f"no base is published in {store.uri}"
        misfit = _misfit(base, cfg)
        return (None, f"the latest base {misfit}") if misfit else (base, f"the latest base, {base['version']}")
    base = read_base(store, cfg.base)
    misfit = _misfit(base, cfg)
    if misfit:
        raise BaseModelError(f"base {misfit}: train with settings that fit it or without a base (base=none)")
    return base, f"the base {base['version']} named by the settings"


def _misfit(base: dict, cfg) -> str:
    """Why `base` cannot start a run with the settings `cfg` ("" when it can): another architecture,
    or a preprocessing of another family (`text`, `ink` and `auto` all read the images' ink)."""
    family = {"auto": "ink", "text": "ink", "ink": "ink"}
    if base["arch"] != cfg.arch:
        return f"{base['version']} was trained with arch {base['arch']!r}, this run's is {cfg.arch!r}"
    if family.get(base["preprocessing"], base["preprocessing"]) != family.get(cfg.preprocessing, cfg.preprocessing):
        return (f"{base['version']} was trained with preprocessing {base['preprocessing']!r}, this run's is "
                f"{cfg.preprocessing!r}")
    return ""


def check_base(cfg, store: ObjectStore) -> dict | None:
    """The record of the base this run starts from (None for none); BaseModelError where the settings
    name one explicitly that is not published or does not fit them (resolve_base)."""
    return resolve_base(cfg, store)[0]
