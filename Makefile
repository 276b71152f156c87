# redis-failure-lab. Every target installs what it needs first (scripts/setup.sh).
# BACKEND=auto|docker|local (default auto: docker when a daemon answers, else local).
SHELL := /bin/bash
BACKEND ?= auto
VENV := .venv
LAB := $(VENV)/bin/redislab
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup up-single up-sentinel up-cluster down status heal faults demo test test-unit lint bench soak compose k8s clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  BACKEND=auto|docker|local passes through to redislab (now: $(BACKEND))"

setup: ## install what is missing (Debian packages, toxiproxy, venv, compose plugin)
	@bash scripts/setup.sh

# Starting a topology on docker/auto also starts a Docker daemon when none answers
# (as root); `make down` stops the daemon again if the lab started it.
define up_topology
	@if [[ "$(BACKEND)" != local ]] && command -v dockerd >/dev/null && [[ $$(id -u) -eq 0 ]]; then \
		$(LAB) docker-daemon start; fi
	@$(LAB) up $(1) --backend $(BACKEND)
endef

up-single: setup ## one Redis node behind Toxiproxy
	$(call up_topology,single)

up-sentinel: setup ## primary + 2 replicas + 3 Sentinels behind Toxiproxy
	$(call up_topology,sentinel)

up-cluster: setup ## Redis Cluster: 3 primaries + 3 replicas behind Toxiproxy
	$(call up_topology,cluster)

down: ## stop the topology; remove containers, networks, volumes, processes
	@if [[ -x $(LAB) ]]; then $(LAB) down; else echo "nothing to do (no venv yet)"; fi

status: setup ## show the running topology, node roles and addresses
	@$(LAB) status

heal: setup ## undo every fault (toxics, disabled proxies, partitions, paused/stopped nodes)
	@$(LAB) heal

faults: setup ## list the faults with their parameters and units
	@$(LAB) faults

PROFILE ?= full
OUT ?= results
ONLY ?=
REPEAT ?= 1
WORKERS ?= 1
demo: setup ## run the catalogue (PROFILE=quick|full, ONLY=sections, OUT=dir, REPEAT=n, WORKERS=n): results/index.md + .html
	@started=0; if [[ "$(BACKEND)" != local ]] && command -v dockerd >/dev/null && [[ $$(id -u) -eq 0 ]] \
		&& ! docker info >/dev/null 2>&1; then $(LAB) docker-daemon start && started=1; fi; \
	$(LAB) demo --profile $(PROFILE) --backend $(BACKEND) --out $(OUT) --repeat $(REPEAT) --workers $(WORKERS) $(if $(ONLY),--only $(ONLY)); rc=$$?; \
	if [[ $$started == 1 ]]; then $(LAB) docker-daemon stop; fi; exit $$rc

test: lint ## lint (ruff, mypy, import-linter), then the test suite on both backends (starts and stops a Docker daemon if needed)
	@$(PY) -m pytest $(PYTEST_ARGS)

test-unit: lint ## lint (ruff, mypy, import-linter), then only the tests that need no Redis
	@$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: setup ## ruff, mypy and import-linter (the layers) with the project's config (pyproject.toml); a type: ignore needs a reason on its line
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports --no-cache
	@bad=$$(git grep -nE '# type: ignore(\[[a-z, -]+\])?[[:space:]]*$$' -- '*.py' || true); \
		if [[ -n "$$bad" ]]; then echo "lint: a type: ignore without a reason on the same line:"; echo "$$bad"; exit 1; fi

bench: setup ## benchmarks (not tests): topology start, failover (lab vs plain client), Toxiproxy, workload engine
	@$(PY) -m experiments.bench_failover --backend $(BACKEND)
	@$(PY) -m experiments.bench_failover --backend $(BACKEND) --fault pause --topology sentinel --topology cluster \
		--out results/bench-failover-pause.json
	@$(PY) -m experiments.bench_failover --backend $(BACKEND) --fault machine --out results/bench-failover-machine.json
	@$(PY) -m faults.bench --backend $(BACKEND)
	@$(PY) -m experiments.bench_workload
	@$(PY) -m experiments.bench_redis --backend $(BACKEND)

CYCLES ?= 50
SOAK_BACKENDS := $(if $(filter local docker,$(BACKEND)),$(BACKEND),local,docker)
soak: setup ## CYCLES (default 50) x (up, every fault, heal, down) per backend; fails if a resource count grows
	@$(PY) scripts/soak.py --cycles $(CYCLES) --backend $(SOAK_BACKENDS) --out $(OUT)/soak.json

compose: setup ## regenerate topologies/compose/*.yml and topologies/kubernetes/*.yaml from the spec
	@$(PY) -m topologies.compose_gen
	@$(PY) -m topologies.k8s_gen

k8s: setup ## regenerate only topologies/kubernetes/*.yaml (manifests, runner Job, partitions)
	@$(PY) -m topologies.k8s_gen

clean: down ## remove the venv
	rm -rf $(VENV)
