"""One typed configuration for a pipeline run, built from DAG params and the environment.

Every value a user can set is checked here, so a wrong value stops the run before any work with a
message that names the setting and says what would be accepted.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tasks.data.input_size import PREPROCESSING_METHODS
from tasks.modelling.architectures import architecture_names
from tasks.store import store_schemes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = "synthetic://?count=3000&length=4&alphabet=0123456789&seed=0"


class ConfigError(ValueError):
    """A setting has a value the pipeline cannot use; the message says which and why."""


def default_store_uri() -> str:
    """The object-store root: `CAPTCHA_STORE` if set, else the project's own `store/` folder."""
    return os.environ.get("CAPTCHA_STORE") or (PROJECT_ROOT / "store").as_uri()


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of one run. `run_key` names the run's folder in the store (`runs/<run_key>/`)."""

    run_key: str
    source: str = DEFAULT_SOURCE
    store: str = ""
    epochs: int = 100
    batch_size: int = 16
    max_train_minutes: float = 9.0  # docs/decisions.md#time-cap-and-patience-defaults
    stall_epochs: int = 15  # docs/decisions.md#changing-course
    arch: str = "crnn"
    height: int = 0  # 0: chosen from the images (tasks.data.input_size)
    width: int = 0
    preprocessing: str = "ink"
    alphabet: str = ""
    max_label_length: int = 16
    label_length: int = 0
    max_refused_fraction: float = 0.2
    min_accuracy: float = 0.5
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    force: bool = False

    def __post_init__(self) -> None:
        if not self.store:
            object.__setattr__(self, "store", default_store_uri())
        self._validate()

    @classmethod
    def from_params(cls, params: dict, run_key: str) -> "PipelineConfig":
        """Build from DAG params (or any mapping); unknown keys are refused, missing keys take defaults."""
        known = {f.name for f in fields(cls)} - {"run_key"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; known settings are {sorted(known)}")
        values = {k: v for k, v in params.items() if v is not None}
        return cls(run_key=run_key, **values)

    def to_dict(self) -> dict:
        return asdict(self)

    def model_settings(self) -> str:
        """A short hash of every setting that shapes the model (not where data comes from or goes)."""
        import hashlib
        import json

        shaping = {k: v for k, v in self.to_dict().items()
                   if k not in ("run_key", "source", "store", "force", "max_refused_fraction")}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    def _validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", self.run_key):
            raise ConfigError(f"run_key {self.run_key!r} must be 1-128 letters, digits, '.', '_' or '-'")
        _require_int(self, "epochs", 1, 10_000)
        _require_int(self, "batch_size", 1, 65_536)
        if self.height or self.width:
            _require_int(self, "height", 8, 1024)
        if self.width:
            _require_int(self, "width", 8, 4096)
        _require_int(self, "height", 0, 1024)
        _require_int(self, "width", 0, 4096)
        if self.preprocessing not in PREPROCESSING_METHODS:
            raise ConfigError(f"preprocessing {self.preprocessing!r} is unknown; choose one of "
                              f"{list(PREPROCESSING_METHODS)}")
        _require_int(self, "seed", 0, 2**31 - 1)
        _require_int(self, "stall_epochs", 0, 10_000)
        _require_int(self, "max_label_length", 1, 64)
        _require_int(self, "label_length", 0, self.max_label_length)
        if self.arch not in architecture_names():
            raise ConfigError(f"arch {self.arch!r} is unknown; choose one of {architecture_names()}")
        if not isinstance(self.force, bool):
            raise ConfigError(f"force must be true or false, got {self.force!r}")
        if not isinstance(self.alphabet, str) or len(set(self.alphabet)) != len(self.alphabet):
            raise ConfigError(f"alphabet {self.alphabet!r} must be a string of distinct characters (or empty)")
        if any(not c.isprintable() or c.isspace() for c in self.alphabet):
            raise ConfigError(f"alphabet {self.alphabet!r} may hold only printable, non-space characters")
        if isinstance(self.max_train_minutes, bool) or not isinstance(self.max_train_minutes, (int, float)) \
                or not 0 <= self.max_train_minutes <= 7 * 24 * 60:
            raise ConfigError(f"max_train_minutes must be a number of minutes from 0 (no limit) to 10080, "
                              f"got {self.max_train_minutes!r}")
        for name in ("max_refused_fraction", "min_accuracy", "val_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError("val_fraction + test_fraction must leave at least 10% of the data for training")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError("source is empty; give a folder, a .zip/.tar.gz archive, an s3:// prefix or synthetic://")
        schemes = store_schemes()
        if not isinstance(self.store, str) or not re.match(rf"^({'|'.join(map(re.escape, schemes))})://", self.store):
            raise ConfigError(f"store {self.store!r} must be a {' or '.join(s + '://' for s in schemes)} URI")


DEFAULTS = {f.name: f.default for f in fields(PipelineConfig) if f.name not in ("run_key", "store")}


def _require_int(cfg: PipelineConfig, name: str, low: int, high: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
