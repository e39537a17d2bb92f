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
# (LAZYSHIFT_MOLECULE_KEEP=1), and the lab is powered off at the end, also on failure.
# Two chains run side by side (one per core), scenarios in a chain one after another: the
# client's scenario prepares the mongodb and source hosts, so it follows their scenarios in
# the same chain; the other roles share no host with it. Each scenario's output goes to
# .state/molecule/<role>.log, printed when it ends. Each chain runs in a process group of its
# own (set -m: a background job of a script would ignore Ctrl-C), stopped on INT/TERM. Throwaway passwords per run; the FerretDB
# binary, the wheelhouse and the lab's base image are built first. XDG_CACHE_HOME: molecule's
# per-scenario state under this checkout, so another checkout's molecule run is left alone.
MOLECULE_LAB    := mol
MOLECULE_CHAINS := lazyshift_mongodb,lazyshift_mock_source,lazyshift_client \
                   lazyshift_mysql,lazyshift_common,lazyshift_tools
MOLECULE_LOGS   := $(STATE)/molecule
molecule: deps-roles deps-ferretdb wheelhouse lab-base
	@set -e; pids=""; \
	stop_chains() { for p in $$pids; do kill -TERM -- -$$p 2>/dev/null || true; done; wait; }; \
	trap 'LAB_NAME=$(MOLECULE_LAB) bash tools/lab/lab.sh down >/dev/null 2>&1 || true' EXIT; \
	trap 'stop_chains; exit 130' INT; trap 'stop_chains; exit 143' TERM; \
	mkdir -p $(MOLECULE_LOGS); \
	export LAZYSHIFT_MOLECULE_KEEP=1 LAZYSHIFT_MOLECULE_LAB=$(MOLECULE_LAB) \
	  XDG_CACHE_HOME="$(abspath $(MOLECULE_LOGS))/cache" \
	  LAZYSHIFT_FERRETDB_BIN="$(abspath $(FERRETDB))" \
	  LAZYSHIFT_MYSQL_APP_PASSWORD=$$(python3 -c "import secrets; print(secrets.token_hex(16))") \
	  LAZYSHIFT_MYSQL_MIGRATE_PASSWORD=$$(python3 -c "import secrets; print(secrets.token_hex(16))") \
	  PATH="$(abspath $(ANSIBLE_VENV))/bin:$$PATH"; \
	chain() { \
	  local role start; for role in $${1//,/ }; do \
	    start=$$SECONDS; \
	    if (cd roles/$$role && molecule test) >$(MOLECULE_LOGS)/$$role.log 2>&1; then \
	      echo "== molecule test: $$role passed in $$((SECONDS - start)) s"; \
	    else \
	      cat $(MOLECULE_LOGS)/$$role.log; echo "== molecule test: $$role FAILED (log above)"; return 1; \
	    fi; \
	  done; \
	}; \
	set -m; for c in $(MOLECULE_CHAINS); do chain $$c & pids="$$pids $$!"; done; set +m; \
	rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	[ $$rc -eq 0 ] && echo "== molecule: every scenario passed in $$SECONDS s"; exit $$rc

# What make test runs from this file: ansible-lint (production profile) and molecule.
test-roles: lint-roles molecule
