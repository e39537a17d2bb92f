"""Helpers for the Terraform tests: the terraform binary, running it, and a scratch copy of
terraform/ to init and run in (so nothing of .terraform/ or state ever lands in the
repository). Named tfhelpers, not conftest, so the module name is unique."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "terraform"
ROOT_MODULES = [
    "bootstrap",
    "modules/kms",
    "modules/network",
    "modules/host",
    "modules/s3-bucket",
    "modules/archive",
    "modules/stack",
    "envs/dev",
    "envs/prod",
]
ENVS = ["envs/dev", "envs/prod"]
DEFAULT_PLUGIN_MIRROR = "/opt/tf-plugins"


def terraform_bin() -> str:
    path = os.environ.get("TERRAFORM") or shutil.which("terraform")
    if not path:
        pytest.fail("terraform not found on PATH (need >= 1.9; set TERRAFORM=/path/to/terraform)")
    return path


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,), timeout: float = 900
) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode not in ok:
        pytest.fail(
            f"{' '.join(cmd)} (in {cwd}) exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-8000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc


def copy_terraform_tree(dest: Path) -> Path:
    """Copy terraform/ without local working files (.terraform, state, overrides); the
    committed lock files come along, and `init -lockfile=readonly` must accept them."""
    target = dest / "terraform"
    shutil.copytree(
        TF_DIR,
        target,
        ignore=shutil.ignore_patterns(
            ".terraform",
            "*.tfstate*",
            "*_override.tf",
            "*_override.tf.json",
            "backend.hcl",
        ),
    )
    return target
