# The assistant's jobs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa
MODEL := models/avrr.tar.gz
# The model depends on its data and on our own components in the pipeline and policies.
# Not on data/nlu/<lang>/field.yml (`make export-labels`): people's questions, unreviewed;
# a native speaker moves what they reviewed into the topic files.
TRAINING_DATA := $(filter-out %/field.yml,$(shell find data -name '*.yml' 2>/dev/null | sort))
TRAINING_FILES := config.yml domain.yml $(TRAINING_DATA) \
	$(wildcard bot/language/*.py bot/safety/*.py) bot/handoff_policy.py \
	avrr/content.py avrr/logs.py avrr/office.py avrr/vocabulary.py
WIDGET := widget/dist/avrr-widget.js
# Rasa 3.6 runs on Python 3.8-3.10 only: use python3.10, wherever pyenv keeps it.
PYTHON310 ?= $(shell for p in python3.10 $(HOME)/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

export RASA_TELEMETRY_ENABLED := false
export PYTHONPATH := $(CURDIR)

.PHONY: help run cluster test train validate lint unit integration conversations e2e cluster-test bench bench-cluster bench-desk soak eval review export-labels clean widget

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# pip's own message shows when an install fails, and stops the build; only the notices
# about this machine's extra package index are left out.
PIP_INSTALL = $(PY) -m pip install --quiet --disable-pip-version-check
QUIET_NOTICES = { grep -v "is ignored" || true; }

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is needed (Rasa 3.6 runs on 3.8-3.10 only)."; exit 1; }
	@echo "==> Creating the virtual environment with $(PYTHON310) (about 2 minutes, 2.7 GB)"
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt 2>&1 | $(QUIET_NOTICES)
	$(PY) -c "import rasa, rasa_sdk" && touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt 2>&1 | $(QUIET_NOTICES)
	$(PY) -c "import pytest, ruff, playwright" && test -x $(VENV)/bin/hadolint && touch $@

# Rasa's training cache keeps a cached LogisticRegressionClassifier's file under the name of
# its old place in the pipeline: after config.yml moves it, the model cannot be loaded.
define train_model
	@if [ -d .rasa/cache ] && [ config.yml -nt .rasa/cache ]; then \
		echo "==> config.yml changed: Rasa's training cache cleared"; rm -rf .rasa/cache; fi
	@echo "==> Training the model (about 11 minutes on 2 cores)"
	$(RASA) train --data $(TRAINING_DATA) --fixed-model-name avrr --out models --quiet
endef

$(MODEL): $(VENV)/.installed $(TRAINING_FILES)
	$(train_model)
	@touch $@

train: $(VENV)/.installed ## train the model into models/
	$(train_model)

$(WIDGET): widget/package-lock.json widget/build.mjs $(wildcard widget/src/*)
	@echo "==> Building the web widget (socket.io client from the npm registry)"
	npm ci --prefix widget --no-audit --no-fund --loglevel=error
	node widget/build.mjs

widget: $(WIDGET) ## build the embeddable web chat widget into widget/dist/

run: $(VENV)/.installed $(MODEL) $(WIDGET) ## set up what is missing, then start everything (Ctrl-C stops it)
	$(PY) -m bot.launch

# `make cluster REPLICAS=3`: make hands a variable set on its command line to the command.
cluster: $(VENV)/.installed $(MODEL) ## PostgreSQL, Redis, nginx, REPLICAS (2) Rasa servers, 2 action servers, 2 desks (Ctrl-C stops it)
	$(PY) -m bot.cluster

validate: $(VENV)/.installed ## check the training data and domain
	$(RASA) data validate --data $(TRAINING_DATA) --fail-on-warnings --quiet

lint: $(VENV)/.dev-installed ## ruff, with bugbear and security rules; hadolint on the Dockerfile
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint --failure-threshold style Dockerfile

unit: $(VENV)/.dev-installed ## pytest without any server: actions, channels, stores, desk on SQLite
	$(PY) -m pytest tests --ignore=tests/e2e --ignore=tests/cluster -m "not integration" -q

integration: $(VENV)/.dev-installed ## the stores on a PostgreSQL server the tests start (Debian's postgresql)
	$(PY) -m pytest tests --ignore=tests/e2e --ignore=tests/cluster -m integration -q

conversations: $(VENV)/.installed $(MODEL) ## conversation tests against the trained model
	$(RASA) test core --e2e --model $(MODEL) --stories tests/conversations --fail-on-prediction-errors --out results --quiet

e2e: $(VENV)/.dev-installed $(MODEL) $(WIDGET) ## start the real servers; talk to them over HTTP, socket.io and Chromium
	$(PY) -m pytest tests/e2e -q

cluster-test: $(VENV)/.dev-installed $(MODEL) ## start `make cluster` for real; kill replicas mid-conversation (postgresql, redis-server, nginx)
	$(PY) -m pytest tests/cluster -m cluster -q

test: lint validate unit integration $(MODEL) conversations e2e cluster-test ## set up what is missing and run the complete test suite

$(VENV)/.eval-installed: $(VENV)/.installed requirements-eval.txt
	$(PIP_INSTALL) -r requirements-eval.txt 2>&1 | $(QUIET_NOTICES)
	$(PY) -c "import lingua, pycld2" && touch $@

eval: $(VENV)/.eval-installed $(MODEL) ## held-out accuracy per language, against lingua and cld2 (eval/report/)
	$(PY) eval/evaluate.py

bench: $(VENV)/.dev-installed $(MODEL) ## load benchmark against a vanilla `rasa init` assistant
	$(PY) bench/load.py

bench-cluster: $(VENV)/.dev-installed $(MODEL) ## as root: 1, then 2 Rasa replicas behind nginx, the same CPU share each (bench/scaling.md)
	$(PY) bench/scaling.py --repeats 5

bench-desk: $(VENV)/.dev-installed ## the desk's ticket list with 3,000 tickets: what a console's poll costs
	$(PY) bench/desk_list.py

soak: $(VENV)/.dev-installed $(MODEL) ## soak run: Telegram chats for minutes while parts are SIGKILLed in turn (bench/soak.md)
	$(PY) bench/soak.py

review: $(VENV)/.installed ## the review sheet of one language: make review LANG=ps (var/review/)
	@# LANG is also the locale's variable: only one given on the command line names ours.
	@test "$(origin LANG)" = "command line" || { echo "Name the language: make review LANG=ps"; exit 1; }
	$(PY) -m avrr.review $(LANG)

export-labels: $(VENV)/.installed ## labelled unanswered questions from the desk as NLU data to review: data/nlu/<lang>/field.yml
	$(PY) -m desk export-labels

clean: ## remove the model, results and local conversations (keeps the venv)
	rm -rf models results var .rasa bench/.starter widget/dist
