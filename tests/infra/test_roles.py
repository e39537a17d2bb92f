"""Role conventions (geerlingguy / community.mongodb layout): meta/main.yml with role_name,
defaults and tasks, a README documenting every default, variables prefixed by the role name,
no password value in the repository, ansible.builtin modules with `command` only where no
module exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from infrahelpers import ANSIBLE_DIR, REPO, ROLES, ROLES_DIR

EXPECTED_ROLES = {
    "lazyshift_common",
    "lazyshift_mongodb",
    "lazyshift_mysql",
    "lazyshift_mock_source",
    "lazyshift_client",
    "lazyshift_tools",
}
# `command` runs only the lazyshift CLI (the operator's commands, no module for them); the
# roles themselves run none (services are systemd units, managed with systemd_service).
COMMAND_ALLOWED = ("lazyshift_tools_command",)
# Units the roles install; each is restarted on failure, runs as its own user, hardened.
ROLE_UNITS = {
    "lazyshift_client": "templates/lazyshift-client@.service.j2",
    "lazyshift_mock_source": "templates/lazyshift-mock-source.service.j2",
    "lazyshift_mongodb": "templates/ferretdb.service.j2",
}
DROP_INS = {
    "lazyshift_mongodb": "templates/mongod-lazyshift.conf.j2",
    "lazyshift_mysql": "files/mariadb-lazyshift.conf",
}


def _yaml(path):
    return yaml.safe_load(path.read_text())


def _task_files():
    yield from ROLES_DIR.glob("*/tasks/*.yml")
    yield from ROLES_DIR.glob("*/handlers/*.yml")
    yield from ANSIBLE_DIR.glob("*.yml")
    yield from ANSIBLE_DIR.glob("tasks/*.yml")
    yield from (REPO / "tests" / "hosts" / "molecule").glob("*.yml")


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
                and not k.startswith(("ansible.builtin.", "ansible.posix."))
                or k in ("command", "shell", "apt", "file", "copy", "template")
            ]
            short = [k for k in modules if "." not in k]
            assert not short, f"{path}: use fully qualified module names, not {short}"
            assert "ansible.builtin.shell" not in task, f"{path}: no shell ({task.get('name')})"
            if "ansible.builtin.command" in task and path.is_relative_to(ROLES_DIR):
                body = str(task["ansible.builtin.command"])
                assert any(a in body for a in COMMAND_ALLOWED), f"{path}: {task.get('name')}"
                assert "changed_when" in task, (
                    f"{path}: command without changed_when: {task.get('name')}"
                )
            third_party = [
                k for k in task if k.startswith(("community.", "amazon.", "ansible.posix."))
            ]
            for k in third_party:
                # Collections only where ansible.builtin has nothing: MySQL and MongoDB users.
                assert k in (
                    "community.mysql.mysql_db",
                    "community.mysql.mysql_user",
                    "community.mongodb.mongodb_user",
                    "community.general.filesystem",
                    "community.general.archive",
                    "ansible.posix.mount",
                ), f"{path}: {k}"


def test_mongodb_write_switch_and_ferretdb_explanation():
    tasks = ROLES_DIR / "lazyshift_mongodb" / "tasks"
    assert "community.mongodb.mongodb_user" in (tasks / "app_role.yml").read_text()
    for name in ("revoke_write.yml", "grant_write.yml"):
        text = (tasks / name).read_text()
        assert "app_role.yml" in text and "lazyshift_mongodb__no_roles" in text, name
    internal = (ROLES_DIR / "lazyshift_mongodb" / "vars" / "main.yml").read_text()
    assert "FerretDB has no role grants" in internal
    # A re-run of the role keeps what stage 3 did: the role reads the mark revoke_write left.
    assert "lazyshift_mongodb__read_only_mark" in (tasks / "users.yml").read_text()


def test_nothing_in_a_role_points_outside_it():
    for path in ROLES_DIR.glob("*/*/*"):
        if path.parent.name == "molecule" or "molecule" in path.parts or not path.is_file():
            continue
        text = path.read_text()
        assert "role_path }}/.." not in text and "../../" not in text, path


@pytest.mark.parametrize("role", sorted(ROLE_UNITS))
def test_units_restart_run_as_a_user_and_are_hardened(role):
    unit = (ROLES_DIR / role / ROLE_UNITS[role]).read_text()
    for line in (
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "WantedBy=multi-user.target",
    ):
        assert line in unit, f"{role}: {line} missing"
    assert re.search(r"^User=\S+", unit, re.M) and "User=root" not in unit


@pytest.mark.parametrize("role", sorted(DROP_INS))
def test_distribution_units_get_a_drop_in_not_a_copy(role):
    text = (ROLES_DIR / role / DROP_INS[role]).read_text()
    assert (
        "Restart=on-failure" in text and "NoNewPrivileges=yes" in text and "PrivateTmp=yes" in text
    )
    tasks = "".join(p.read_text() for p in (ROLES_DIR / role / "tasks").glob("*.yml"))
    assert ".service.d/lazyshift.conf" in tasks


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_molecule_scenario_on_the_lab(role):
    scenario = ROLES_DIR / role / "molecule" / "default"
    config = _yaml(scenario / "molecule.yml")
    assert config["driver"]["name"] == "default"
    assert config["provisioner"]["playbooks"]["create"].endswith("tests/hosts/molecule/create.yml")
    assert config["verifier"]["name"] == "testinfra"
    assert "idempotence" in config["scenario"]["test_sequence"]
    assert (scenario / "converge.yml").is_file()


def test_lazyshift_is_installed_from_the_wheelhouse_with_hashes():
    text = (ROLES_DIR / "lazyshift_common" / "tasks" / "lazyshift.yml").read_text()
    assert text.count("--no-index") >= 2 and "--require-hashes" in text
    requirements = (REPO / "requirements" / "hosts.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", requirements, re.M)
    assert pins and "lazyshift" not in pins
    blocks = requirements.split("==")[1:]
    assert all("--hash=sha256:" in b for b in blocks), "every pin carries its hashes"


def test_mongodb_engine_check_mode(tmp_path, ansible_environ):
    """The engine mongodb tasks in check mode, on this machine: they run up to MongoDB's
    repository, whose signing key (pgp.mongodb.com) is not reachable from here, and fail
    there and only there (see the role README: what ran and what did not)."""
    from infrahelpers import INFRA_TESTS, explain, run, tool

    env = {
        **ansible_environ,
        "LAZYSHIFT_MONGODB_ADMIN_PASSWORD": "check-only",
        "LAZYSHIFT_MONGODB_APP_PASSWORD": "check-only",
        "LAZYSHIFT_MONGODB_MIGRATE_PASSWORD": "check-only",
    }
    proc = run(
        [
            tool("ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
            "--check",
            "--diff",
            str(INFRA_TESTS / "playbooks" / "mongodb-engine-check.yml"),
        ],
        env=env,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    # Every task before MongoDB's repository ran (check mode), the repository's own module
    # prerequisites included; the run stops where MongoDB's key server must be reached.
    assert "TASK [lazyshift_mongodb : Install what the repository module needs]" in out
    repo = out.split("TASK [lazyshift_mongodb : Add MongoDB's apt repository", 1)[1]
    assert "Could not fetch signed_by key" in repo.split("TASK [", 1)[0], explain(proc)
    assert "failed=1" in out, explain(proc)
    assert not Path("/etc/apt/sources.list.d/mongodb-org-7.0.sources").exists(), "check mode wrote"
