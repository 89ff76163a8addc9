"""One typed configuration for a pipeline run, built from DAG params and the environment.

Every value a user can set is checked here, so a wrong value stops the run before any work with a
message that names the setting and says what would be accepted.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import unquote, urlparse

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
    all_read_epochs: int = 5  # docs/decisions.md#nothing-left-to-learn
    arch: str = "crnn"
    height: int = 0  # 0: chosen from the images (tasks.data.input_size)
    width: int = 0
    preprocessing: str = "auto"
    alphabet: str = ""
    max_label_length: int = 16
    label_length: int = 0
    max_refused_fraction: float = 0.2
    min_accuracy: float = 0.5
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    force: bool = False
    warm_start: bool = True  # start from the champion's weights where its setup is the same (fine-tuning)
    # Where no champion fits, start from a base model's weights (tasks.registry.bases.resolve_base): auto
    # (the latest base where one fits), none, latest or a version.
    base: str = "auto"
    approval: bool = False  # a model that passes the gate waits for a person's Approve (tasks.approve)
    approval_hours: float = 24.0  # then the champion stays; a waiting run holds the next night's

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

        # The gate's floor decides what becomes the champion, not what is trained.
        shaping = {k: v for k, v in self.to_dict().items()
                   if k not in ("run_key", "source", "store", "force", "max_refused_fraction", "approval",
                                "approval_hours", "warm_start", "min_accuracy")}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    def _validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", self.run_key):
            raise ConfigError(f"run_key {self.run_key!r} must be 1-128 letters, digits, '.', '_' or '-'")
        for name in RANGES:
            _require_in_range(name, getattr(self, name))
        if self.label_length > self.max_label_length:
            raise ConfigError(f"label_length {self.label_length} is longer than max_label_length "
                              f"{self.max_label_length}; raise max_label_length or lower label_length")
        if self.preprocessing not in PREPROCESSING_METHODS:
            raise ConfigError(f"preprocessing {self.preprocessing!r} is unknown; choose one of "
                              f"{list(PREPROCESSING_METHODS)}")
        if self.arch not in architecture_names():
            raise ConfigError(f"arch {self.arch!r} is unknown; choose one of {architecture_names()}")
        for name in ("force", "approval", "warm_start"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.base, str) or not re.fullmatch(r"(|[A-Za-z0-9][A-Za-z0-9._-]{0,200})", self.base):
            raise ConfigError(f"base {self.base!r} must be auto, none, latest or the version of a published base "
                              "(python -m tasks.registry bases)")
        if not isinstance(self.alphabet, str) or len(set(self.alphabet)) != len(self.alphabet):
            raise ConfigError(f"alphabet {self.alphabet!r} must be a string of distinct characters (or empty)")
        if any(not c.isprintable() or c.isspace() for c in self.alphabet):
            raise ConfigError(f"alphabet {self.alphabet!r} may hold only printable, non-space characters")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError("val_fraction + test_fraction must leave at least 10% of the data for training")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError("source is empty; give a folder, a .zip/.tar.gz archive, an s3:// prefix or synthetic://")
        schemes = store_schemes()
        if not isinstance(self.store, str) or not re.match(rf"^({'|'.join(map(re.escape, schemes))})://", self.store):
            raise ConfigError(f"store {self.store!r} must be a {' or '.join(s + '://' for s in schemes)} URI")
        check_allowed("source", self.source, ALLOWED_SOURCES)
        check_allowed("store", self.store, ALLOWED_STORES)


# Where a run may read and write, where a deployment limits it: prefixes separated by commas, e.g.
# "s3://captchas/,/data/landing/" and "s3://models/". Unset or empty: anywhere.
ALLOWED_SOURCES = "CAPTCHA_ALLOWED_SOURCES"
ALLOWED_STORES = "CAPTCHA_ALLOWED_STORES"


def _normalised(location: str) -> str:
    """A source or store location with local paths made absolute and free of '..' and links, so a
    prefix check cannot be walked around."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).resolve().as_uri()
    if not parsed.scheme:
        return str(Path(location).expanduser().resolve())
    return location


def check_allowed(what: str, location: str, variable: str) -> None:
    """Refuse `location` unless it lies under one of the prefixes listed in the environment `variable` (if set)."""
    prefixes = [p.strip() for p in os.environ.get(variable, "").split(",") if p.strip()]
    if not prefixes:
        return
    target = _normalised(location)
    for prefix in map(_normalised, prefixes):
        if target == prefix or target.startswith(prefix if prefix.endswith(("/", "?")) else prefix + "/"):
            return
    raise ConfigError(f"{what} {location!r} is not under a location this deployment allows ({variable}: "
                      f"{', '.join(prefixes)})")


# The numeric settings' ranges, the one source of truth for them: the config checks values against
# them and the DAG's trigger form offers them (param_schema). (kind, lowest, highest, highest allowed?)
RANGES = {
    "epochs": ("integer", 1, 10_000, True),
    "batch_size": ("integer", 1, 65_536, True),
    "max_train_minutes": ("number", 0, 7 * 24 * 60, True),
    "stall_epochs": ("integer", 0, 10_000, True),
    "all_read_epochs": ("integer", 0, 10_000, True),
    "height": ("integer", 0, 1024, True),  # 0: chosen; else 8 or more (SMALLEST_INPUT)
    "width": ("integer", 0, 4096, True),
    "max_label_length": ("integer", 1, 64, True),
    "label_length": ("integer", 0, 64, True),
    "seed": ("integer", 0, 2**31 - 1, True),
    "max_refused_fraction": ("number", 0, 1, False),
    "min_accuracy": ("number", 0, 1, False),
    "val_fraction": ("number", 0, 1, False),
    "test_fraction": ("number", 0, 1, False),
    "approval_hours": ("number", 0.01, 72, True),  # a waiting run holds the next: at most three nights
}
SMALLEST_INPUT = 8  # pixels: the networks pool the input down 8 times


def param_schema(name: str) -> dict:
    """The JSON-schema keywords of a numeric setting, for an Airflow Param."""
    kind, low, high, inclusive = RANGES[name]
    schema = {"type": kind, "minimum": low, "maximum" if inclusive else "exclusiveMaximum": high}
    if name in ("height", "width"):
        schema["not"] = {"minimum": 1, "maximum": SMALLEST_INPUT - 1}
    return schema


def _require_in_range(name: str, value) -> None:
    kind, low, high, inclusive = RANGES[name]
    what = "a whole number" if kind == "integer" else "a number"
    span = f"{what} from {low} to {high}" if inclusive else f"{what} in [{low}, {high})"
    if isinstance(value, bool) or not isinstance(value, int if kind == "integer" else (int, float)) \
            or not (low <= value <= high if inclusive else low <= value < high):
        raise ConfigError(f"{name} must be {span}, got {value!r}")
    if name in ("height", "width") and 0 < value < SMALLEST_INPUT:
        raise ConfigError(f"{name} must be 0 (chosen from the images) or at least {SMALLEST_INPUT}, got {value}")


DEFAULTS = {f.name: f.default for f in fields(PipelineConfig) if f.name not in ("run_key", "store")}

