# lazyshift: two commands matter — `make demo` and `make test`. Everything they need is
# installed by the targets below, each idempotent (a second run reuses what is there).
SHELL := /bin/bash
# Relative on purpose: make cannot name a target whose path has a space, and a checkout may
# live under one ("/root/my work/lazyshift"). Recipes run in this folder.
ROOT  := .
VENV  := $(ROOT)/.venv
PY    := $(VENV)/bin/python
LAZYSHIFT := $(VENV)/bin/lazyshift
STATE := $(ROOT)/.state
GOBIN ?= $(shell go env GOPATH 2>/dev/null)/bin
FERRETDB := $(GOBIN)/ferretdb
export LAZYSHIFT_FERRETDB_BIN ?= $(FERRETDB)

.DEFAULT_GOAL := help
-include mk/terraform.mk
-include mk/infra.mk
-include mk/stage0.mk
-include mk/lab.mk
-include mk/roles.mk

.PHONY: help deps test-deps deps-apt deps-python deps-node deps-ferretdb demo test test-python \
        test-node test-py test-lab test-faults lint bench bench-1m stack-up stack-down clean

help:
	@echo "make demo   - bring up the local stack and walk the five stages with live traffic"
	@echo "make test   - install what is needed and run every test"
	@echo "make bench  - benchmarks (results in bench/results.json)"
	@echo "make bench-1m - backfill + verify at 1M documents, peak RSS (dataset cached in .state)"
	@echo "make lint   - ruff check (with the complexity rule) and ruff format --check"
	@echo "make stage0 ENV=dev|prod            - terraform plan, approval, apply, hand-over"
	@echo "make site|stage1..stage5|rollback|gate INVENTORY=lab|aws [ENV=dev] - the playbooks"
	@echo "make lab-up | lab-down | test-lab    - the lab of systemd hosts (needs root)"

deps: deps-apt deps-python deps-node deps-ferretdb

# make test also needs checkov (its own venv) for the Terraform checks.
test-deps: deps deps-terraform deps-infra

deps-apt:
	@bash tools/bootstrap/apt.sh

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

deps-python: $(VENV)/.installed

tools/mock-source/node_modules/.installed: tools/mock-source/package.json tools/mock-source/package-lock.json
	cd tools/mock-source && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(@D) && touch $@

deps-node: tools/mock-source/node_modules/.installed

deps-ferretdb:
	@GOBIN=$(GOBIN) bash tools/bootstrap/ferretdb.sh >/dev/null

# Test stack: its own state folder and any free ports (recorded there, where the tests read
# them), so a developer's `make demo` stack and other checkouts' stacks are left alone.
TEST_STACK := --state-dir $(STATE)/test --mysql-port 0 --mongo-port 0 --no-source
# Run a command with the test stack up, and stop the stack afterwards whatever happens: the
# command fails, or make is interrupted (Ctrl-C, SIGTERM from a CI timeout).
with_test_stack = trap '$(LAZYSHIFT) dev down $(TEST_STACK) >/dev/null' EXIT; \
	trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(LAZYSHIFT) dev up $(TEST_STACK) >/dev/null && $(1)

# make test: the checks first (ruff, ansible-lint), then three runs side by side, each
# cleaning up after itself (failure, Ctrl-C, SIGTERM): the Node and Python suites on the
# local test stack (test-py), molecule on the lab `mol` and the end-to-end run on the lab
# `e2e` (test-lab). make waits for all three and fails if any failed; each one's output is
# printed when it ends (--output-sync).
test: test-deps lint lint-roles
	@$(MAKE) -s -j3 --output-sync=target test-py molecule test-lab-e2e

test-py: test-deps
	cd tools/mock-source && npm test --silent
	@$(call with_test_stack,$(VENV)/bin/pytest -q -p no:cacheprovider tests)

# The fault schedule's clean-history test alone (part of `make test`): seed 9, or
# LAZYSHIFT_TEST_FAULT_SEED=N for another seed's schedule.
FAULTS_TEST := tests/integration/dev/test_faults.py::test_a_fixed_fault_schedule_leaves_a_clean_history

test-faults: deps
	@$(call with_test_stack,$(VENV)/bin/pytest -q -p no:cacheprovider $(FAULTS_TEST))

# The lab half of make test alone: molecule (every role) beside the end-to-end run.
test-lab:
	@$(MAKE) -s -j2 --output-sync=target molecule test-lab-e2e

lint: deps-python
	$(VENV)/bin/ruff check tools tests bench
	$(VENV)/bin/ruff format --check tools tests bench

# Demo stack on the default ports; the mock streams 5000 messages at 500/s (live traffic).
DEMO_SOURCE_ARGS := --seed 7 --count 5000 --rate 500

demo: deps
	$(LAZYSHIFT) dev up -- $(DEMO_SOURCE_ARGS)
	$(LAZYSHIFT) dev demo -- $(DEMO_SOURCE_ARGS)

# Benchmarks (never part of make test): results merge into bench/results.json.
BENCH_DOCS ?= 100000
bench: deps
	@$(call with_test_stack,$(PY) bench/bench_modes.py && \
	  $(PY) bench/bench_data.py --docs $(BENCH_DOCS) && \
	  $(PY) bench/bench_rollback.py --docs $(BENCH_DOCS))

# Issue 10 goal 4 at 1,000,000 documents: the 2-worker backfill and verify with peak RSS
# (keys *_1m beside the 100k ones of `make bench`). The dataset is generated once into the
# test stack's FerretDB under .state/test (~15 min here) and reused by every later run.
BENCH_1M_RUNS ?= backfill_2w,verify
bench-1m: deps
	@$(call with_test_stack,$(PY) bench/bench_data.py --docs 1000000 --runs $(BENCH_1M_RUNS))

stack-up: deps
	$(LAZYSHIFT) dev up

stack-down:
	-$(LAZYSHIFT) dev down

clean: stack-down
	rm -rf $(STATE)

