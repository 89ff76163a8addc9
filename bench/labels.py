"""Label curves: accuracy on a fixed held-out set against the number of labelled training captchas,
trained from scratch (cold) and from a base model made here (tasks.registry.bases).

    python -m bench.labels --base-store /path/to/store [--real ../shared/datasets/wilhelmy_v2]
                           [--styles NAME ...] [--sizes 100 200 400 800 0] [--seed 0] [--minutes 9]
                           [--plot docs/label_curves.png] [--rows earlier.jsonl]

`--base-store` is a local store holding a published base (the captcha_base_model DAG, `make base`;
its latest is used), or `--build-base` makes one first as the DAG does (`--base-images`,
`--base-minutes`). Each data set is a folder of real
captchas (`--real`) or a style of bench.styles (`--styles`, STYLE_IMAGES captchas of it). Its
held-out set is bench.accuracy's (files sorted by the MD5 of their name, the last fifth: 208 of the
tutorial's 1040); the training captchas come from the rest in one fixed random order, so each size's
set holds the smaller ones (0: all of them), and 10% of them by content hash is the validation split.
Every run goes through the pipeline's stages with its default settings in a store of its own.
Prints one JSON line per run, then a Markdown table, and draws the curves; `--rows` adds the runs of
an earlier invocation (its JSON lines) to both, so a changed start can be rerun alone.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

from bench.accuracy import md5_holdout, train_and_score
from bench.styles import STYLES
from tasks.registry.bases import BASES, WORK, base_config, publish_base, read_base
from tasks.data.labels import split_of
from tasks.data.synthetic import SyntheticSpec, generate
from tasks.pipeline.config import PipelineConfig
from tasks.store import LocalStore

SIZES = (100, 200, 400, 800, 0)
STYLE_IMAGES = 1250  # a style's captchas: 1000 to train on, 250 held out


def write_style(name: str, folder: Path, seed: int) -> Path:
    """The captchas of a style of bench.styles, written to `folder` (label as file name)."""
    folder.mkdir(parents=True)
    spec = SyntheticSpec.parse(f"synthetic://?count={STYLE_IMAGES}&seed={seed}&{STYLES[name]}")
    for file_name, data in generate(spec):
        (folder / file_name).write_bytes(data)
    return folder


def training_sets(files: list[Path], holdout: set[str], sizes, seed: int) -> dict[int, list[Path]]:
    """For each size, the training captchas (nested: a size's set holds every smaller size's; 0: all)."""
    pool = [p for p in files if p.name not in holdout]
    random.Random(seed).shuffle(pool)
    return {size: pool[:size] if size else pool for size in sizes if size <= len(pool)}


def run_one(data_name: str, files: list[Path], holdout_files: list[Path], base_store: LocalStore | None,
            work: Path, seed: int, minutes: float | None) -> dict:
    """Train on `files` and score on `holdout_files`, from the base of `base_store` when given."""
    landing, store = work / "landing", LocalStore(work / "store")
    landing.mkdir(parents=True)
    for path in [*files, *holdout_files]:
        shutil.copy2(path, landing / path.name)  # ingest refuses links
    base = ""
    if base_store is not None:
        shutil.copytree(base_store.root / BASES, store.root / BASES)
        base = read_base(store, "latest")["version"]
    held_out = {p.name for p in holdout_files}

    def assign_split(entry: dict) -> str:
        if Path(entry["name"]).name in held_out:
            return "test"
        return "val" if split_of(entry["sha256"], 0.1, 0.0) == "val" else "train"

    settings = {"max_train_minutes": minutes} if minutes is not None else {}
    cfg = PipelineConfig(run_key=f"labels-{len(files)}", source=str(landing), store=store.uri, seed=seed, base=base,
                         **settings)
    figures = train_and_score(cfg, store, assign_split)
    return {"data": data_name, "labels": len(files), "start": "base" if base else "cold", "base": base or None,
            "seed": seed, **figures}


def earlier_rows(path: Path) -> list[dict]:
    """The runs among the JSON lines an earlier invocation printed."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [r for r in lines if "start" in r]


def table(rows: list[dict]) -> str:
    """Markdown: one row per data set and size, cold beside base."""
    lines = ["| data set | labelled captchas (train + val) | cold start | from the base | epochs (cold / base) | "
             "training (cold / base) |", "| --- | --- | --- | --- | --- | --- |"]
    for (data, labels), runs in _pairs(rows).items():
        cold, base = runs.get("cold"), runs.get("base")

        def cell(r):
            return f"{100 * r['full_accuracy']:.1f}% ({r['correct']}/{r['test_images']})" if r else "-"

        def pair(key, fmt):
            return " / ".join(fmt(r[key]) if r else "-" for r in (cold, base))

        lines.append(f"| {data} | {labels} | {cell(cold)} | {cell(base)} | {pair('epochs', str)} | "
                     f"{pair('train_s', lambda s: f'{s / 60:.1f} min')} |")
    return "\n".join(lines)


def _pairs(rows: list[dict]) -> dict:
    pairs: dict = {}
    for r in rows:
        pairs.setdefault((r["data"], r["labels"]), {})[r["start"]] = r
    return pairs


def plot(rows: list[dict], path: Path) -> None:
    """The curves: full-captcha accuracy against labelled captchas, a panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["data"] for r in rows))
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for axis, name in zip(axes[0], names):
        for start, style in (("cold", "o--"), ("base", "s-")):
            runs = sorted((r for r in rows if r["data"] == name and r["start"] == start), key=lambda r: r["labels"])
            if runs:
                axis.plot([r["labels"] for r in runs], [100 * r["full_accuracy"] for r in runs], style,
                          label="from the base" if start == "base" else "cold start")
        axis.set_xscale("log")
        ticks = []
        for size in sorted({r["labels"] for r in rows if r["data"] == name}):
            ticks = ticks[:-1] if ticks and size < 1.2 * ticks[-1] else ticks  # "all" over a close size
            ticks.append(size)
        axis.set_xticks(ticks, [str(size) for size in ticks], fontsize=8)
        axis.minorticks_off()
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("labelled captchas")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out captchas read (%)")
    axes[0][0].legend(loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--base-store", type=Path, help="a local store with a published base (its latest is used)")
    source.add_argument("--build-base", action="store_true", help="make a base first")
    parser.add_argument("--base-images", type=int, default=30_000)
    parser.add_argument("--base-minutes", type=float, default=45.0)
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="folders of real labelled captchas")
    parser.add_argument("--styles", nargs="*", choices=sorted(STYLES), default=[])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="training captchas (0: all)")
    parser.add_argument("--starts", nargs="+", choices=("cold", "base"), default=["cold", "base"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=None, help="training time limit (default: the pipeline's)")
    parser.add_argument("--plot", type=Path, help="where to draw the curves (PNG)")
    parser.add_argument("--rows", type=Path, help="JSON lines of earlier runs, as printed, for the table and plot")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = earlier_rows(args.rows) if args.rows else []
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        tmp = Path(tmp)
        if args.build_base:  # what the captcha_base_model DAG does
            base_store = LocalStore(tmp / "base-store")
            cfg = base_config("labels-base", base_store.uri, args.base_images, args.base_minutes, args.seed)
            work = LocalStore(tmp / "base-store" / WORK / cfg.run_key)
            train_and_score(cfg, work)
            print(json.dumps({"base": publish_base(cfg, base_store, work)}), flush=True)
        else:
            base_store = LocalStore(args.base_store)
            print(json.dumps({"base": read_base(base_store, "latest")}), flush=True)
        folders = [(folder.name, folder) for folder in args.real]
        folders += [(name, write_style(name, tmp / "styles" / name, args.seed)) for name in args.styles]
        for name, folder in folders:
            files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
            holdout = md5_holdout([p.name for p in files])
            held_out = [p for p in files if p.name in holdout]
            for size, chosen in training_sets(files, holdout, args.sizes, args.seed).items():
                for start in args.starts:
                    work = tmp / "runs" / f"{name}-{size}-{start}"
                    rows.append(run_one(name, chosen, held_out, base_store if start == "base" else None, work,
                                        args.seed, args.minutes))
                    print(json.dumps(rows[-1]), flush=True)
                    shutil.rmtree(work)
    print(table(rows), flush=True)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
