"""Role conventions (geerlingguy / community.mongodb layout): meta/main.yml with role_name,
defaults and tasks, a README documenting every default, variables prefixed by the role name,
no password value in the repository, ansible.builtin modules with `command` only where no
module exists."""

from __future__ import annotations

import re

import pytest
import yaml
from infrahelpers import ANSIBLE_DIR, ROLES, ROLES_DIR

EXPECTED_ROLES = {
    "lazyshift_common",
    "lazyshift_mongodb",
    "lazyshift_mysql",
    "lazyshift_mock_source",
    "lazyshift_client",
    "lazyshift_tools",
}
# `command` runs only these: the lazyshift CLI, start-stop-daemon (no module) and the project's
# FerretDB build script (no module builds Go code).
COMMAND_ALLOWED = (
    "lazyshift_tools_command",
    "start-stop-daemon",
    "lazyshift_client__argv",
    "lazyshift_mock_source__argv",
    "lazyshift_mongodb__argv",
    "lazyshift_mysql__argv",
    "ferretdb.sh",
)


def _yaml(path):
    return yaml.safe_load(path.read_text())


def _task_files():
    yield from ROLES_DIR.glob("*/tasks/*.yml")
    yield from ROLES_DIR.glob("*/handlers/*.yml")
    yield from ANSIBLE_DIR.glob("*.yml")
    yield from ANSIBLE_DIR.glob("tasks/*.yml")


def _tasks(node):
    """Every task dict in a task/handler/playbook file, blocks and plays included."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if "hosts" in node:
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from _tasks(node.get(key) or [])
            return
        if "block" in node:
            for key in ("block", "rescue", "always"):
                yield from _tasks(node.get(key) or [])
            return
        yield node


def test_the_six_roles_exist():
    assert set(ROLES) == EXPECTED_ROLES


@pytest.mark.parametrize("role", ROLES)
def test_layout_and_meta(role):
    base = ROLES_DIR / role
    for rel in (
        "defaults/main.yml",
        "tasks/main.yml",
        "handlers/main.yml",
        "meta/main.yml",
        "README.md",
    ):
        assert (base / rel).is_file(), f"{role}: {rel} missing"
    meta = _yaml(base / "meta" / "main.yml")
    assert meta["galaxy_info"]["role_name"] == role
    assert meta["galaxy_info"]["min_ansible_version"]
    assert meta["galaxy_info"]["platforms"]
    deps = [d["role"] if isinstance(d, dict) else d for d in meta.get("dependencies") or []]
    assert deps == ([] if role == "lazyshift_common" else ["lazyshift_common"])


@pytest.mark.parametrize("role", ROLES)
def test_defaults_are_prefixed_and_documented(role):
    base = ROLES_DIR / role
    defaults = _yaml(base / "defaults" / "main.yml") or {}
    assert defaults, f"{role}: no defaults"
    readme = (base / "README.md").read_text()
    for name in defaults:
        assert name.startswith(role + "_"), f"{role}: {name} is not prefixed with {role}_"
        assert f"`{name}`" in readme, f"{role}: README.md does not document {name}"
    internal = base / "vars" / "main.yml"
    if internal.exists():
        for name in _yaml(internal) or {}:
            assert name.startswith(role + "__"), f"{role}: internal var {name} needs {role}__"


@pytest.mark.parametrize("role", ROLES)
def test_registered_and_set_facts_are_prefixed(role):
    for path in (ROLES_DIR / role).glob("*/*.yml"):
        if path.parent.name not in ("tasks", "handlers"):
            continue
        for task in _tasks(_yaml(path) or []):
            if "register" in task:
                assert task["register"].startswith(role + "_"), f"{path}: {task['register']}"
            for fact in task.get("ansible.builtin.set_fact") or {}:
                assert fact.startswith(role + "_"), f"{path}: {fact}"


def test_no_password_value_in_the_repository():
    """Passwords only ever come from the environment (lookup env) or a vault."""
    for path in list(ROLES_DIR.glob("*/defaults/main.yml")) + list(
        (ROLES_DIR.parent / "inventories").glob("*/group_vars/*.yml")
    ):
        for name, value in (_yaml(path) or {}).items():
            if "password" in name:
                assert re.fullmatch(
                    r"\{\{ lookup\('ansible\.builtin\.env', '[A-Z_]+'\) \}\}", str(value)
                ), f"{path}: {name}"


def test_roles_fail_clearly_without_passwords():
    for role, var in (
        ("lazyshift_mysql", "LAZYSHIFT_MYSQL_APP_PASSWORD"),
        ("lazyshift_tools", "LAZYSHIFT_MYSQL_MIGRATE_PASSWORD"),
        ("lazyshift_client", "LAZYSHIFT_MYSQL_APP_PASSWORD"),
    ):
        text = "".join(p.read_text() for p in (ROLES_DIR / role / "tasks").glob("*.yml"))
        assert "ansible.builtin.assert" in text and var in text, role


def test_modules_are_fully_qualified_and_command_is_the_exception():
    for path in _task_files():
        for task in _tasks(_yaml(path) or []):
            modules = [
                k
                for k in task
                if "." in k
                and not k.startswith("ansible.builtin.")
                or k in ("command", "shell", "apt", "file", "copy", "template")
            ]
            short = [k for k in modules if "." not in k]
            assert not short, f"{path}: use fully qualified module names, not {short}"
            assert "ansible.builtin.shell" not in task, f"{path}: no shell ({task.get('name')})"
            if "ansible.builtin.command" in task:
                body = str(task["ansible.builtin.command"])
                assert any(a in body for a in COMMAND_ALLOWED), f"{path}: {task.get('name')}"
                assert "changed_when" in task, (
                    f"{path}: command without changed_when: {task.get('name')}"
                )
            third_party = [k for k in task if k.startswith(("community.", "amazon."))]
            for k in third_party:
                # Collections only where ansible.builtin has nothing: MySQL and MongoDB users.
                assert k in (
                    "community.mysql.mysql_db",
                    "community.mysql.mysql_user",
                    "community.mongodb.mongodb_user",
                ), f"{path}: {k}"


def test_mongodb_read_only_is_a_variable_with_a_ferretdb_explanation():
    tasks = (ROLES_DIR / "lazyshift_mongodb" / "tasks" / "read_only.yml").read_text()
    assert "lazyshift_mongodb_read_only" in tasks
    assert "ansible.builtin.debug" in tasks and "FerretDB has no role grants" in tasks
    real = (ROLES_DIR / "lazyshift_mongodb" / "tasks" / "read_only_mongodb.yml").read_text()
    assert "community.mongodb.mongodb_user" in real
    stage3 = (ANSIBLE_DIR / "stage3-mysql-primary.yml").read_text()
    assert "lazyshift_mongodb_read_only: true" in stage3
    rollback = (ANSIBLE_DIR / "rollback.yml").read_text()
    assert "lazyshift_mongodb_read_only: false" in rollback
