# Roles (roles/*), their molecule scenarios and the host tests (tests/hosts/). Included by the
# root Makefile.
#
# molecule, ansible-lint and pytest-testinfra go into the Ansible venv (.venv-ansible,
# mk/infra.mk), pinned beside its ansible-core so that nothing there moves.
ROLES_TEST_STAMP := $(ANSIBLE_VENV)/.installed-roles-test-1
ROLES_TEST_PINS  := 'ansible-core==$(ANSIBLE_CORE_VERSION)' 'ansible==$(ANSIBLE_VERSION)' \
                    'molecule==24.12.0' 'ansible-lint==24.12.2' 'ansible-compat==24.10.0' \
                    'pytest-testinfra==10.1.1' 'pytest==8.3.4'
# Every scenario, in the order one lab serves them (the databases before their clients).
MOLECULE_ROLES   := lazyshift_common lazyshift_mongodb lazyshift_mysql lazyshift_mock_source \
                    lazyshift_tools lazyshift_client
WHEELHOUSE       := $(ROOT)/dist

.PHONY: deps-roles wheelhouse lint-roles test-roles molecule

$(ROLES_TEST_STAMP): $(ANSIBLE_STAMP)
	$(ANSIBLE_VENV)/bin/python -m pip install -q $(ROLES_TEST_PINS)
	touch $@

# python3-debian: the mongodb engine's check-mode test runs its deb822_repository task here.
deps-roles: $(ROLES_TEST_STAMP)
	@python3 -c 'import debian' 2>/dev/null || { \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-debian; }

# What the hosts install lazyshift from (lazyshift_common_wheelhouse): the lazyshift wheel,
# its dependencies' wheels checked against requirements/hosts.txt's sha256 hashes, and that
# file. The wheels are this machine's (x86_64, CPython 3.11: Debian 12, like the hosts).
# Regenerate the file after a dependency change in pyproject.toml with
#   pip-compile --generate-hashes --strip-extras --allow-unsafe -o requirements/hosts.txt pyproject.toml
wheelhouse: deps-python
	rm -f $(WHEELHOUSE)/lazyshift-*.whl
	$(PY) -m pip wheel -q --no-deps -w $(WHEELHOUSE) .
	$(PY) -m pip download -q --no-deps --require-hashes --only-binary :all: \
	  -r requirements/hosts.txt -d $(WHEELHOUSE)
	cp requirements/hosts.txt $(WHEELHOUSE)/requirements.txt

# ansible-lint, production profile, over the roles and the molecule playbooks (the stage
# playbooks in ansible/ are linted by their owner's target).
lint-roles: deps-roles
	cd $(ROOT) && PATH="$(abspath $(ANSIBLE_VENV))/bin:$$PATH" ANSIBLE_CONFIG=ansible/ansible.cfg \
	  $(ANSIBLE_VENV)/bin/ansible-lint --profile production --offline roles tests/hosts/molecule

# molecule: every role's scenario (roles/<role>/molecule/default) on one lab of its own
# (LAB_NAME=mol): the hosts are booted once and kept between scenarios
# (LAZYSHIFT_MOLECULE_KEEP=1), the databases' scenarios before their clients' (whose prepare
# then finds them converged), and the lab is powered off at the end, also on failure.
# Throwaway passwords per run; the FerretDB binary and the wheelhouse are built first.
MOLECULE_LAB := mol
molecule: deps-roles deps-ferretdb wheelhouse
	@set -e; trap 'LAB_NAME=$(MOLECULE_LAB) bash tools/lab/lab.sh down >/dev/null 2>&1 || true' EXIT; \
	trap 'exit 130' INT; trap 'exit 143' TERM; \
	export LAZYSHIFT_MOLECULE_KEEP=1 LAZYSHIFT_MOLECULE_LAB=$(MOLECULE_LAB) \
	  LAZYSHIFT_FERRETDB_BIN="$(abspath $(FERRETDB))" \
	  LAZYSHIFT_MYSQL_APP_PASSWORD=$$(python3 -c "import secrets; print(secrets.token_hex(16))") \
	  LAZYSHIFT_MYSQL_MIGRATE_PASSWORD=$$(python3 -c "import secrets; print(secrets.token_hex(16))") \
	  PATH="$(abspath $(ANSIBLE_VENV))/bin:$$PATH"; \
	for role in $(MOLECULE_ROLES); do \
	  echo "== molecule test: $$role"; \
	  (cd roles/$$role && molecule test) || exit 1; \
	done

# What make test runs from this file: ansible-lint (production profile) and molecule.
test-roles: lint-roles molecule
