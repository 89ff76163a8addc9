"""Serving: reading captchas with a published model (the `predict` command) and the registry of
published versions (models/<version>/ and the models/latest.json pointer)."""
