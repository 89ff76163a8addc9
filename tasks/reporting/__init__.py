"""Reporting: the plots and model card published with a model, and the run report `make run` prints."""
