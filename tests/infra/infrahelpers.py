"""Paths and runners for the infrastructure tests (roles/, ansible/, inventories/, Jenkinsfile).

Every tool these tests need is installed by `make deps-infra`; a missing one fails the test
with what to install, never skips it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLES_DIR = REPO / "roles"
ANSIBLE_DIR = REPO / "ansible"
INVENTORIES = REPO / "inventories"
JENKINSFILE = REPO / "Jenkinsfile"
INFRA_TESTS = Path(__file__).resolve().parent
ANSIBLE_VENV = Path(os.environ.get("LAZYSHIFT_ANSIBLE_VENV", REPO / ".venv-ansible"))
LAZYSHIFT = REPO / ".venv" / "bin" / "lazyshift"

ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())
STAGE_PLAYBOOKS = [
    "stage1-mongo.yml",
    "stage2-dual.yml",
    "stage3-mysql-primary.yml",
    "stage4-backfill.yml",
    "stage5-mysql.yml",
    "rollback.yml",
    "site.yml",
    "gate.yml",
    "read-mode.yml",
]
# Inventories that parse offline (aws needs AWS credentials and the EC2 API).
OFFLINE_INVENTORIES = ["local"]


def tool(name: str) -> str:
    """Path of an Ansible CLI from .venv-ansible; fails saying what to install."""
    path = ANSIBLE_VENV / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} not found: run `make deps-infra` (pinned ansible in .venv-ansible)")
    return str(path)


def java_home() -> str:
    env = os.environ.get("JAVA_HOME")
    if env and Path(env, "bin", "java").exists():
        return env
    java = shutil.which("java")
    if java is None:
        pytest.fail("java not found: apt-get install default-jre-headless (Groovy needs Java 17)")
    return str(Path(os.path.realpath(java)).parents[1])


def groovy() -> str:
    path = shutil.which("groovy")
    if path is None:
        pytest.fail("groovy not found: run `make deps-infra` (apt-get install groovy)")
    return path


def groovy_lint() -> Path:
    path = INFRA_TESTS / "node_modules" / ".bin" / "npm-groovy-lint"
    if not path.exists():
        pytest.fail(f"{path} not found: run `make deps-infra` (npm ci in tests/infra)")
    return path


def ansible_env(tmp: Path) -> dict[str, str]:
    """Environment for ansible-*: the repo's ansible.cfg, every scratch file under `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "LAZYSHIFT_"))}
    env.update(
        {
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_HOME": str(tmp / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "PATH": f"{ANSIBLE_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        }
    )
    return env


def run(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )
