# Two commands for a newcomer: `make run` (train on embedded defaults) and `make test` (the fast tests;
# `make test-all` runs every test, as CI does).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AIRFLOW := $(VENV)/bin/airflow
STAMP := $(VENV)/.installed

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(CURDIR)/.airflow/airflow.db
export TF_CPP_MIN_LOG_LEVEL := 2
# airflow standalone starts its components as `airflow ...` from PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
UI_PORT ?= 8080

SOURCE ?=
STORE ?=
# A folder given as STORE is the store file://<its absolute path>.
STORE_URI = $(if $(STORE),$(if $(findstring ://,$(STORE)),$(STORE),file://$(abspath $(STORE))))
BASE ?=

COMPOSE := docker compose -f docker/docker-compose.yaml --env-file $(if $(wildcard docker/.env),docker/.env,docker/.env.example)

.PHONY: venv browser base run test test-all test-distributed test-ui test-containers ui airflow-db up down clean \
	images build-gpu-image

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(STAMP)

# The UI test drives Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium > /dev/null; \
	  elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium > /dev/null; \
	  else echo "note: $(CHROMIUM) is missing and cannot be installed here (apt-get install chromium); the UI test will say so"; fi; \
	fi

airflow-db: venv
	@mkdir -p $(AIRFLOW_HOME)
	@$(AIRFLOW) db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }

# Runs the whole DAG once with `airflow dags test`, then prints where the model and plots are.
# SOURCE=path/to/images (or an archive, s3:// prefix, synthetic:// spec); STORE=a folder, file:///... or s3://...;
# BASE=none trains from scratch where a base model (`make base`) is published (default: auto, the latest that fits); MINUTES=most minutes of training.
# On the embedded synthetic captchas a first run trains at most 3.5 minutes, so that it ends within
# 5 on 2 cores (README "Two commands"); a SOURCE of your own gets the pipeline's cap.
MINUTES ?= $(if $(SOURCE),,3.5)
run: airflow-db
	@set -euo pipefail; \
	when=$$(date -u +%Y-%m-%dT%H:%M:%S); \
	conf=$$($(PY) -c 'import json, os, sys; source, store, base, minutes = sys.argv[1:]; \
	  conf = {"source": os.path.abspath(source) if os.path.exists(source) else source} if source else {}; \
	  conf.update({"store": store} if store else {}); conf.update({"base": base} if base else {}); \
	  conf.update({"max_train_minutes": float(minutes)} if minutes else {}); \
	  print(json.dumps(conf))' "$(SOURCE)" "$(STORE_URI)" "$(BASE)" "$(MINUTES)"); \
	store="$(STORE_URI)"; [ -n "$$store" ] || store=$$($(PY) -c 'from tasks.pipeline.config import default_store_uri; print(default_store_uri())'); \
	case "$$store" in file://*) mkdir -p "$${store#file://}";; esac; \
	echo "captcha_training: run $$when, conf $$conf"; \
	$(AIRFLOW) dags test captcha_training "$$when" -c "$$conf"; \
	echo; $(PY) -m tasks.reporting.run_report --store "$$store" --run-key "$$(date -u -d "$$when" +%Y%m%dT%H%M%S)"

# A base model made here from synthetic captchas of many styles (the captcha_base_model DAG, run once
# with `airflow dags test`), published to the store (STORE, or the pipeline's own) as bases/latest:
# runs on a new style start from it with the `base` param.
BASE_IMAGES ?= 30000
BASE_MINUTES ?= 45
base: airflow-db
	@set -euo pipefail; \
	conf=$$($(PY) -c 'import json, sys; images, minutes, store = sys.argv[1:]; \
	  print(json.dumps({"images": int(images), "max_train_minutes": float(minutes), **({"store": store} if store else {})}))' \
	  "$(BASE_IMAGES)" "$(BASE_MINUTES)" "$(STORE_URI)"); \
	$(AIRFLOW) dags test captcha_base_model "$$(date -u +%Y-%m-%dT%H:%M:%S)" -c "$$conf"; \
	$(PY) -m tasks.registry $(if $(STORE),--store $(STORE_URI)) bases

# The fast tier, for every change: every test but those marked as needing an Airflow process, Celery,
# a browser, Docker or a long training (pyproject.toml's markers), on both cores.
FAST_TIER := not (e2e or distributed or ui or containers or long_training or stateful)
test: venv
	$(PY) -m pytest -m "$(FAST_TIER)" -n 2 --dist loadfile

# Everything, nothing skipped (what CI runs): the fast tier, then the slow tests.
test-all: venv browser
	$(PY) -m pytest -m "$(FAST_TIER)" -n 2 --dist loadfile
	$(PY) -m pytest -m "not ($(FAST_TIER))"

# The DAG on the CeleryExecutor with this machine's PostgreSQL and Redis (part of `make test-all`).
test-distributed: venv
	$(PY) -m pytest -m distributed

# The Airflow UI in headless Chromium: trigger from the form, watch the run, read the results (part of `make test-all`).
test-ui: venv browser
	$(PY) -m pytest -m ui

# The compose deployment built and run in Docker (part of `make test-all`): dockerd is started, and installed
# from Debian's docker.io when missing (as root), and stopped again if it was not running.
test-containers: venv
	$(PY) -m pytest -m containers

# The images of docker/, built here (from a local Debian base where Docker Hub cannot be reached).
images: venv
	$(PY) -m deploy build

# The GPU worker's image (CUDA wheels: several GB; not part of `make test`), then its TensorFlow checked.
build-gpu-image: venv
	$(PY) -m deploy build --gpu

# Airflow's all-in-one server with the DAG loaded.
ui: airflow-db
	@echo "Airflow UI: http://localhost:$(UI_PORT) - log in as admin; the password is printed below on the first start"
	@echo "(it is kept in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	AIRFLOW__API__PORT=$(UI_PORT) AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$(UI_PORT)/execution/ \
	  $(AIRFLOW) standalone

# The distributed deployment of docker/ (needs Docker, and an NVIDIA GPU for the gpu worker).
# Refuses to start with docker/.env missing or holding the example's secrets.
SECRETS := POSTGRES_PASSWORD MINIO_ROOT_PASSWORD AIRFLOW_JWT_SECRET AIRFLOW_ADMIN_PASSWORD
up:
	@test -f docker/.env || { echo "make up: docker/.env is missing: cp docker/.env.example docker/.env, then set its secrets"; exit 1; }
	@for name in $(SECRETS); do \
	  example=$$(grep "^$$name=" docker/.env.example | cut -d= -f2-); value=$$(grep "^$$name=" docker/.env | cut -d= -f2-); \
	  if [ -z "$$value" ] || [ "$$value" = "$$example" ]; then \
	    echo "make up: set $$name in docker/.env to a secret of your own (it is empty or the example's)"; exit 1; fi; \
	done
	$(COMPOSE) up --build --detach

down:
	$(COMPOSE) down

clean:
	rm -rf $(AIRFLOW_HOME) store
