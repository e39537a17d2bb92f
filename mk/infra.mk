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
INFRA_INVENTORY      ?= local

.PHONY: deps-infra deps-ansible deps-groovy deps-groovy-lint test-infra infra-wheel \
        infra-stage1 infra-stage2 infra-stage3 infra-stage4 infra-stage5 infra-rollback

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

# The lazyshift wheel the roles install on real hosts (lazyshift_client_wheel_dir=dist).
infra-wheel: deps-python
	$(PY) -m pip wheel -q --no-deps -w $(ROOT)/dist $(ROOT)

# One target per stage, the same commands Jenkins runs (INFRA_INVENTORY=local|aws).
ANSIBLE_PLAYBOOK := ANSIBLE_CONFIG=$(ROOT)/ansible/ansible.cfg $(ANSIBLE_VENV)/bin/ansible-playbook \
                    -i $(ROOT)/inventories/$(INFRA_INVENTORY)

infra-stage1: deps-ansible
	$(ANSIBLE_PLAYBOOK) ansible/stage1-mongo.yml
infra-stage2: deps-ansible
	$(ANSIBLE_PLAYBOOK) ansible/stage2-dual.yml
infra-stage3: deps-ansible
	$(ANSIBLE_PLAYBOOK) ansible/stage3-mysql-primary.yml
infra-stage4: deps-ansible
	$(ANSIBLE_PLAYBOOK) ansible/stage4-backfill.yml
infra-stage5: deps-ansible
	$(ANSIBLE_PLAYBOOK) ansible/stage5-mysql.yml
infra-rollback: deps-ansible
	$(ANSIBLE_PLAYBOOK) ansible/rollback.yml
