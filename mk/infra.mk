# Ansible, Jenkins and their tests (roles/, ansible/, inventories/, Jenkinsfile, jenkins/,
# tests/infra/). Included by the root Makefile. `deps-infra` is idempotent: it installs only
# what is missing (a second run reuses the venv, the apt package and node_modules).
#
# Ansible lives in its own venv (.venv-ansible), never in the project venv: the pinned
# `ansible` package bundles the collections the roles and the AWS inventory use
# (community.mysql, community.mongodb, amazon.aws), so nothing comes from Galaxy.
ANSIBLE_VERSION      ?= 10.7.0
ANSIBLE_CORE_VERSION ?= 2.17.14
ANSIBLE_VENV         := $(ROOT)/.venv-ansible
ANSIBLE_STAMP        := $(ANSIBLE_VENV)/.installed-$(ANSIBLE_VERSION)-$(ANSIBLE_CORE_VERSION)
GROOVY_LINT_DIR      := $(ROOT)/tests/infra

.PHONY: deps-infra deps-ansible deps-groovy deps-groovy-lint test-infra wheel infra-check aws-inventory \
        site stage1 stage2 stage3 stage4 stage5 rollback gate test-lab-e2e

deps-infra: deps-ansible deps-groovy deps-groovy-lint

# Debian's python3 (not a pyenv shim): its venv also serves the local inventory's targets.
$(ANSIBLE_STAMP):
	test -x $(ANSIBLE_VENV)/bin/python || /usr/bin/python3 -m venv $(ANSIBLE_VENV)
	$(ANSIBLE_VENV)/bin/python -m pip install -q -U pip
	$(ANSIBLE_VENV)/bin/python -m pip install -q 'ansible==$(ANSIBLE_VERSION)' \
	  'ansible-core==$(ANSIBLE_CORE_VERSION)' 'boto3==1.35.99'
	rm -f $(ANSIBLE_VENV)/.installed-*
	touch $@

deps-ansible: $(ANSIBLE_STAMP)

# Debian's groovy (2.4) compiles the Jenkinsfile as a script (syntax check); needs Java.
deps-groovy:
	@command -v groovy >/dev/null || { \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends groovy; }

# npm-groovy-lint (pinned by tests/infra/package-lock.json) for the Jenkinsfile.
$(GROOVY_LINT_DIR)/node_modules/.installed: $(GROOVY_LINT_DIR)/package.json $(GROOVY_LINT_DIR)/package-lock.json
	cd $(GROOVY_LINT_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps-groovy-lint: $(GROOVY_LINT_DIR)/node_modules/.installed

# Only the infrastructure tests (syntax checks, inventories, a real idempotent local run,
# role conventions, Jenkinsfile parse and lint).
test-infra: deps-python deps-infra
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/infra

# What the hosts install lazyshift from: dist/ (the lazyshift wheel + hash-pinned dependency
# wheels, `wheelhouse` in mk/roles.mk). Jenkins calls `make wheel` before the stages.
wheel: wheelhouse

# The playbooks, one make target each, the commands Jenkins runs (and a person can type):
#   make site|stage1..stage5|rollback|gate INVENTORY=lab|local|aws [ENV=dev] [ANSIBLE_ARGS=...]
# INVENTORY=lab: the lab from `make lab-up` (LAB_NAME=...), throwaway secrets generated into
#   .state/lab/secrets.env, the FerretDB binary built here (make deps-ferretdb) copied over.
# INVENTORY=aws: ENV (the Terraform environment) and AWS_REGION are required; secrets come
#   from the environment (Jenkins credentials).
INVENTORY ?= local
ENV       ?=
LAB_SECRETS := $(STATE)/lab/secrets.env
INVENTORY_PATH_lab   = $(STATE)/lab/$(LAB_NAME)/hosts.yml
INVENTORY_PATH_local = $(ROOT)/inventories/local
INVENTORY_PATH_aws   = $(STATE)/aws/$(ENV)/lazyshift.aws_ec2.yml
INVENTORY_PATH = $(INVENTORY_PATH_$(INVENTORY))

infra-check:
	@case "$(INVENTORY)" in lab|local|aws) ;; \
	  *) echo "INVENTORY must be lab, local or aws (got '$(INVENTORY)')" >&2; exit 2;; esac
	@if [ "$(INVENTORY)" = aws ] && [ -z "$(ENV)" ]; then \
	  echo "INVENTORY=aws needs ENV (the Terraform environment), e.g. make $(MAKECMDGOALS) INVENTORY=aws ENV=dev" >&2; exit 2; fi
	@if [ "$(INVENTORY)" = aws ] && [ -z "$$AWS_REGION" ]; then \
	  echo "INVENTORY=aws needs AWS_REGION (the region of the Terraform environment)" >&2; exit 2; fi
	@if [ "$(INVENTORY)" = lab ] && [ ! -f "$(INVENTORY_PATH_lab)" ]; then \
	  echo "no lab inventory at $(INVENTORY_PATH_lab): run make lab-up$(if $(filter-out lab,$(LAB_NAME)), LAB_NAME=$(LAB_NAME)) first" >&2; exit 2; fi
	@if [ "$(INVENTORY)" = lab ] && [ ! -f "$(LAB_SECRETS)" ]; then \
	  umask 077; mkdir -p $(STATE)/lab; \
	  for v in LAZYSHIFT_MYSQL_APP_PASSWORD LAZYSHIFT_MYSQL_MIGRATE_PASSWORD; do \
	    echo "export $$v=$$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"; done > $(LAB_SECRETS); fi

	@if [ "$(INVENTORY)" = aws ]; then $(MAKE) -s aws-inventory ENV=$(ENV); fi

# The aws_ec2 plugin does not template its filters: one rendered inventory per environment
# (inventories/aws/aws_ec2.yml.in, the Environment tag filled in), group_vars linked beside it.
aws-inventory:
	@[ -n "$(ENV)" ] || { echo "aws-inventory needs ENV, e.g. make aws-inventory ENV=dev" >&2; exit 2; }
	@case "$(ENV)" in *[!a-z0-9-]*) echo "ENV must be [a-z0-9-] (got '$(ENV)')" >&2; exit 2;; esac
	@mkdir -p $(STATE)/aws/$(ENV)
	@sed 's/@ENV@/$(ENV)/' inventories/aws/aws_ec2.yml.in > $(INVENTORY_PATH_aws)
	@ln -sfn "$(abspath inventories/aws/group_vars)" $(STATE)/aws/$(ENV)/group_vars

# Lab runs read the generated secrets; the other inventories take them from the environment.
ANSIBLE_ENV = ANSIBLE_CONFIG=$(ROOT)/ansible/ansible.cfg LAZYSHIFT_ENV=$(ENV) \
              $(if $(filter lab,$(INVENTORY)),LAZYSHIFT_FERRETDB_BIN=$(LAZYSHIFT_FERRETDB_BIN))
run_playbook = $(if $(filter lab,$(INVENTORY)),. $(LAB_SECRETS) &&) $(ANSIBLE_ENV) \
	$(ANSIBLE_VENV)/bin/ansible-playbook -i $(INVENTORY_PATH) $(ROOT)/ansible/$(1) $(ANSIBLE_ARGS)

site: deps-ansible infra-check
	$(call run_playbook,site.yml)
stage1: deps-ansible infra-check
	$(call run_playbook,stage1-mongo.yml)
stage2: deps-ansible infra-check
	$(call run_playbook,stage2-dual.yml)
stage3: deps-ansible infra-check
	$(call run_playbook,stage3-mysql-primary.yml)
stage4: deps-ansible infra-check
	$(call run_playbook,stage4-backfill.yml)
stage5: deps-ansible infra-check
	$(call run_playbook,stage5-mysql.yml)
rollback: deps-ansible infra-check
	$(call run_playbook,rollback.yml)
gate: deps-ansible infra-check
	$(call run_playbook,gate.yml)

# The end-to-end lab run (tests/infra/test_lab_e2e.py): its own lab (E2E_LAB_NAME, default
# e2e), brought up first and down afterwards whatever happens, like with_test_stack. Another
# lab on this machine: pick another name (and LAB_SUBNET if its subnet is taken).
E2E_LAB_NAME ?= e2e
E2E_LAB := LAB_NAME=$(E2E_LAB_NAME) $(if $(LAB_SUBNET),LAB_SUBNET=$(LAB_SUBNET))
test-lab-e2e: deps-python deps-ansible deps-roles deps-ferretdb wheel lab-base
	@trap '$(E2E_LAB) bash tools/lab/lab.sh down >/dev/null' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	  $(E2E_LAB) bash tools/lab/lab.sh up && \
	  $(E2E_LAB) LAZYSHIFT_LAB_E2E=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/infra/test_lab_e2e.py
