# Terraform tooling for terraform/ and tests/terraform/.
# checkov pins many packages of its own, so it lives in its own venv (.venv-checkov),
# never in the project venv. `deps-terraform` is idempotent: a second run reuses the venv.
CHECKOV_VERSION ?= 3.3.30
CHECKOV_VENV    := $(ROOT)/.venv-checkov
CHECKOV         := $(CHECKOV_VENV)/bin/checkov
TERRAFORM       ?= terraform

.PHONY: deps-terraform test-terraform terraform-fmt

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -U pip
	$(CHECKOV_VENV)/bin/python -m pip install -q 'checkov==$(CHECKOV_VERSION)'
	rm -f $(CHECKOV_VENV)/.installed-*
	touch $@

deps-terraform: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
	@command -v $(TERRAFORM) >/dev/null || { echo "terraform not found on PATH (need >= 1.9)"; exit 1; }

# Only the Terraform tests (fmt, validate, terraform test, checkov, moto apply, renderer).
test-terraform: deps-python deps-terraform
	$(VENV)/bin/pytest -q tests/terraform

terraform-fmt:
	$(TERRAFORM) fmt -recursive terraform
