"""Retries by kind of failure: an error that a retry cannot change (a wrong setting, label or source,
images ingest refuses, a store refused as named) fails its task at once with its message; anything
else (a store or source that did not answer, a compare-and-swap lost to others) is retried by
Airflow, with backoff (the DAGs' default_args and `transient`, which their tasks ask)."""
from __future__ import annotations


class PermanentError(Exception):
    """A failure that the same inputs give again however often the task runs."""


def transient(error: BaseException) -> bool:
    """Whether a retry may succeed where `error` was raised."""
    from tasks.registry.promotion import DecisionError
    from tasks.store import MissingObjectError, PreconditionFailed, StoreError, StoreUnavailable

    if isinstance(error, (StoreUnavailable, PreconditionFailed, DecisionError)):
        return True
    # ConfigError, LabelError, SourceError, ImageRejected and a synthetic spec's error are ValueErrors.
    return not isinstance(error, (ValueError, PermanentError, MissingObjectError, StoreError))
