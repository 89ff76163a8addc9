"""The model card published with every version: data, settings, metrics, time taken, the gate's verdict."""
from __future__ import annotations

import json

COURSE_ACTIONS = {
    "without-dropout": "dropout turned off, training went on from the same weights",
    "fresh-start": "a fresh start from another initialisation, without dropout",
    "per-position-head": "switched to the per-position head (`cnn`), trained from scratch",
    "stronger-augmentation": "augmentation at twice its strength, training went on",
    "dropout-off-again": "dropout turned off for the rest of the run, training went on",
}


def model_card(cfg, version: str, meta: dict, metrics: dict, encoded: dict, trained: dict, passes: bool,
               verdict: str) -> str:
    """A Markdown model card: data, settings, metrics, time taken, and the gate's verdict against the
    champion evaluate measured. (A version is immutable; whether it became `latest`, and when, is in
    the registry's audit log.)"""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in ("store", "run_key")}
    ci_low, ci_high = metrics["full_accuracy_ci95"]
    lines = [
        f"# Captcha model {version}", "",
        f"- Architecture: `{meta['arch']}`, input {meta['height']}x{meta['width']} "
        f"({encoded.get('input_size', 'set by the user')}), preprocessing `{meta.get('preprocessing', 'grey')}`"
        + (f" ({encoded['preprocessing_reason']})" if encoded.get("preprocessing_reason") else "") + ", "
        f"labels up to {meta['max_length']} characters from `{meta['alphabet']}`",
        f"- Data version: `{encoded['data_version']}` (shards `{meta['shards']}`)",
        "- Split sizes: " + ", ".join(f"{k} {v}" for k, v in encoded["splits"].items()),
        f"- Training: {trained['epochs']} epochs in {trained['seconds']:.0f} s",
        f"- Started from: {_parent(trained.get('parent'))}",
        "", "## Test metrics", "",
        f"- Full-captcha accuracy: {metrics['full_accuracy']:.2%} ({metrics['correct']} of {metrics['test_images']}; "
        f"95% CI {ci_low:.2%} - {ci_high:.2%})",
        f"- Character accuracy: {metrics['char_accuracy']:.2%}",
        f"- Character error rate: {metrics['char_error_rate']:.2%}",
    ]
    if metrics.get("champion"):
        lines.append(f"- Champion {metrics['champion']['version']} on the same test split: "
                     f"{metrics['champion']['full_accuracy']:.2%}")
    if trained.get("course"):
        lines += ["", "## Course of training", ""]
        lines += [f"- After epoch {change['epoch']}: {COURSE_ACTIONS.get(change['action'], change['action'])}, "
                  f"because of {change['reason']}." for change in trained["course"]]
    lines += ["", "## Gate", "", f"{'Passes' if passes else 'Does not pass'} the gate: {verdict}. Whether and when it "
              "became `latest`: `models/history.jsonl` (`python -m tasks.registry show " + version + "`).",
              "", "## Settings", "", "```json", json.dumps(settings, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def _parent(parent: dict | None) -> str:
    """The model's lineage, as the card says it."""
    if not parent:
        return "not recorded"
    if parent.get("version"):
        return f"the champion {parent['version']}, fine-tuned ({parent['why']})"
    if parent.get("base"):
        return f"the base {parent['base']} ({parent['why']})"
    return f"scratch ({parent['why']})"
