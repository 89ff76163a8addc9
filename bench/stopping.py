"""When training may stop: the `all_read_epochs` rule against training on, from the same runs.

    python -m bench.stopping [--styles NAME ...] [--real ../shared/datasets/wilhelmy_v2] [--default]
                             [--seeds 0] [--patiences 1 2 3 5] [--minutes 9] [--epochs 100] [--curve]

Each case trains once with the pipeline's defaults but `all_read_epochs=0` (training goes on to
early stopping or the time cap, as before the rule), keeping every epoch's checkpoint. Its own
evaluation is the "before" figure. Because the rule only ends training earlier, what each patience
would have given is read off the same run: the epoch it stops at, the epoch whose weights it keeps
(the lowest validation loss so far, as the schedule keeps) and that checkpoint's accuracy on the test
split. Cases: styles of bench.styles (1,600 training captchas each), `--real` folders (bench.accuracy's
held-out split) and `--default`, the `make run` source. Prints one JSON line per case, then a table.
On a machine that does other work meanwhile, `--minutes 0 --epochs N` gives every case the same
epochs whatever each one costs.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
from pathlib import Path

from bench.accuracy import md5_holdout, train_and_score
from bench.styles import STYLES, TRAIN_FRACTION
from tasks.data.labels import split_of
from tasks.evaluate import evaluate
from tasks.modelling.schedule import READING, reads, reads_everything
from tasks.pipeline.config import DEFAULT_SOURCE, PipelineConfig
from tasks.pipeline.records import read_stage_result, write_stage_result
from tasks.store import LocalStore


def epoch_keeping(root: Path) -> LocalStore:
    """A LocalStore at `root` that also keeps each epoch's checkpoint as runs/<run>/epochs/<n>.keras."""
    class EpochKeeping(LocalStore):
        kept = 0

        def upload_file(self, local, key):
            super().upload_file(local, key)
            if key.endswith("/checkpoint.keras"):
                self.kept += 1
                super().upload_file(local, key.replace("checkpoint.keras", f"epochs/{self.kept}.keras"))

    return EpochKeeping(root)


def stop_and_keep(history: dict, course: list[dict], patience: int) -> tuple[int, int]:
    """(epoch training stops at, epoch whose weights are kept), both from 1, under `all_read_epochs` =
    `patience` (0: the rule off), for a run whose `history` went on without it. The schedule counts
    from the first reading after the last change of course, and keeps the lowest validation loss."""
    last = len(history["val_loss"])
    start = max([c["epoch"] for c in course], default=0)
    logs = [{name: history[name][e] for name in ("accuracy", "val_accuracy", "val_loss")} for e in range(last)]
    reading = next((e for e in range(start, last) if reads(logs[e], READING)), None)
    if reading is None:
        return last, last
    stop, run = last, 0
    for e in range(reading, last):
        run = run + 1 if reads_everything(logs[e]) else 0
        if patience and run >= patience:
            stop = e + 1
            break
    kept = min(range(reading, stop), key=lambda e: (logs[e]["val_loss"], e))
    return stop, kept + 1


def accuracy_of_epoch(store: LocalStore, cfg: PipelineConfig, epoch: int) -> dict:
    """Test-split figures of the run's checkpoint of `epoch`, evaluated as a run of its own."""
    sibling = PipelineConfig(**{**cfg.to_dict(), "run_key": f"{cfg.run_key}-epoch{epoch}"})
    for stage in ("encode_labels", "build_shards"):
        write_stage_result(store, sibling.run_key, stage, read_stage_result(store, cfg.run_key, stage))
    trained = read_stage_result(store, cfg.run_key, "train")
    write_stage_result(store, sibling.run_key, "train",
                       {**trained, "model": f"runs/{cfg.run_key}/epochs/{epoch}.keras"})
    return evaluate(sibling, store)


def run_case(name: str, cfg: PipelineConfig, store: LocalStore, patiences: list[int], assign_split=None,
             curve: bool = False) -> dict:
    """Train `cfg` once without the rule; return the figures before and under each patience (with
    `curve`, also the test captchas each epoch's checkpoint reads, and the run's history)."""
    before = train_and_score(cfg, store, assign_split)
    trained = read_stage_result(store, cfg.run_key, "train")
    history = store.get_json(trained["history"])
    seconds = history["epoch_seconds"]
    _, kept_before = stop_and_keep(history, trained["course"], 0)
    assert kept_before == (trained["best_epoch"] or trained["epochs"]), (kept_before, trained["best_epoch"])
    rules = {}
    for patience in patiences:
        stop, kept = stop_and_keep(history, trained["course"], patience)
        figures = before if kept == kept_before else accuracy_of_epoch(store, cfg, kept)
        rules[patience] = {"stop": stop, "kept": kept, "minutes": round(sum(seconds[:stop]) / 60, 1),
                           "correct": figures["correct"], "full_accuracy": figures["full_accuracy"]}
    row = {"case": name, "seed": cfg.seed, "train": before["splits"]["train"], "test": before["test_images"],
           "before": {"epochs": before["epochs"], "kept": kept_before, "minutes": round(sum(seconds) / 60, 1),
                      "correct": before["correct"], "full_accuracy": before["full_accuracy"]},
           "rules": rules}
    if curve:
        row["curve"] = [accuracy_of_epoch(store, cfg, epoch)["correct"] for epoch in range(1, len(seconds) + 1)]
        row["history"] = {name: history[name] for name in ("accuracy", "val_accuracy", "val_loss", "epoch_seconds")}
    return row


def cases(args) -> list[tuple[str, dict, object]]:
    """(name, config settings, split assignment or None) of every case asked for."""
    out = []
    for folder in args.real:
        names = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        holdout = md5_holdout(names)

        def assign_split(entry: dict, holdout=holdout) -> str:
            if Path(entry["name"]).name in holdout:
                return "test"
            return "val" if split_of(entry["sha256"], 0.1, 0.0) == "val" else "train"

        out.append((f"real: {folder.name}", {"source": str(folder.resolve())}, assign_split))
    if args.default:
        out.append(("make run default", {"source": DEFAULT_SOURCE}, None))
    for style in args.styles:
        count = math.ceil(args.train_images / TRAIN_FRACTION)
        out.append((style, {"source": f"synthetic://?count={count}&seed={{seed}}&{STYLES[style]}"}, None))
    return out


def table(rows: list[dict], patiences: list[int]) -> str:
    """Markdown: each case before the rule and under each patience (stop epoch, minutes, test captchas read)."""
    head = ["case", "seed", "train / test", "before: epochs (kept), minutes, read"]
    head += [f"all_read_epochs={p}: stop (kept), minutes, read" for p in patiences]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        b = r["before"]
        cells = [r["case"], str(r["seed"]), f"{r['train']} / {r['test']}",
                 f"{b['epochs']} ({b['kept']}), {b['minutes']}, {b['correct']} ({100 * b['full_accuracy']:.1f}%)"]
        for p in patiences:
            rule = r["rules"][p]
            change = rule["correct"] - b["correct"]
            cells.append(f"{rule['stop']} ({rule['kept']}), {rule['minutes']}, {rule['correct']} "
                         f"({100 * rule['full_accuracy']:.1f}%, {change:+d})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", nargs="*", choices=sorted(STYLES), default=list(STYLES))
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="folders of real labelled captchas")
    parser.add_argument("--default", action="store_true", help="add the make run source")
    parser.add_argument("--train-images", type=int, default=1600, help="training captchas per style")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--patiences", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--minutes", type=float, default=None, help="training time limit (default: the pipeline's)")
    parser.add_argument("--epochs", type=int, default=None, help="most epochs (default: the pipeline's)")
    parser.add_argument("--curve", action="store_true",
                        help="also read the test split with every epoch's checkpoint (one evaluation per epoch)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    timing = {name: value for name, value in (("max_train_minutes", args.minutes), ("epochs", args.epochs))
              if value is not None}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-stopping-") as tmp:
        for seed in args.seeds:
            for index, (name, settings, assign_split) in enumerate(cases(args)):
                store = epoch_keeping(Path(tmp) / f"{index}-{seed}")
                cfg = PipelineConfig(run_key=f"bench-stopping-{index}-seed{seed}", store=store.uri, seed=seed,
                                     all_read_epochs=0, **timing,
                                     **{**settings, "source": settings["source"].format(seed=seed)})
                rows.append(run_case(name, cfg, store, args.patiences, assign_split, args.curve))
                print(json.dumps(rows[-1]), flush=True)
    print(table(rows, args.patiences), flush=True)


if __name__ == "__main__":
    main()
