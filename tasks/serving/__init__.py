"""Serving: reading captchas with a published model (the `predict` command)."""
