"""Fixtures for the infrastructure tests; helpers live in infrahelpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from infrahelpers import ansible_env

# The lab end-to-end run needs the lab its make target boots (make test-lab-e2e).
collect_ignore = [] if os.environ.get("LAZYSHIFT_LAB_E2E") else ["test_lab_e2e.py"]


@pytest.fixture
def ansible_environ(tmp_path: Path) -> dict[str, str]:
    return ansible_env(tmp_path)


@pytest.fixture(scope="module")
def module_ansible_environ(tmp_path_factory) -> dict[str, str]:
    return ansible_env(tmp_path_factory.mktemp("ansible"))
