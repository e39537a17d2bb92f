"""Fixtures for the infrastructure tests; helpers live in infrahelpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from infrahelpers import ansible_env


@pytest.fixture
def ansible_environ(tmp_path: Path) -> dict[str, str]:
    return ansible_env(tmp_path)


@pytest.fixture(scope="module")
def module_ansible_environ(tmp_path_factory) -> dict[str, str]:
    return ansible_env(tmp_path_factory.mktemp("ansible"))
