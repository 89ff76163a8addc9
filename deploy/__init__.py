"""Containers for the distributed deployment of docker/: the Docker engine and Compose this machine
needs (engine.py) and the images, built from the official Python image or, where Docker Hub cannot be
reached, from a Debian base made here (images.py). `python -m deploy --help` lists the commands."""
