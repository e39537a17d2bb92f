"""Host tests: what a production host must look like after the roles ran, on any inventory.

Each test names the group it checks through a fixture (`mysql_host`, `client_host`, ...):
it runs once per host of that group in the inventory, and is dropped at collection when the
inventory has no such host (a molecule scenario of one role): deselected, never skipped.
Variables are the inventory's (group_vars, host vars) over the roles' defaults, read through
Ansible as the roles saw them.
"""

from __future__ import annotations

import json
import os

import pytest

GROUPS = ("mongodb", "mysql", "source", "client", "tools")
# Test functions (node ids without parameters) that need a group the inventory lacks.
_NO_HOSTS: set[str] = set()


def _inventory(config: pytest.Config) -> str:
    inventory = config.getoption("ansible_inventory", default=None) or os.environ.get(
        "MOLECULE_INVENTORY_FILE"
    )
    if not inventory:
        raise pytest.UsageError("name the inventory: --ansible-inventory=PATH")
    return inventory


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # testinfra is imported here, not at module level: the project's own `pytest tests`
    # (without testinfra) walks this folder too.
    from testinfra.utils.ansible_runner import AnsibleRunner

    for group in (*GROUPS, "all"):
        fixture = "any_host" if group == "all" else f"{group}_host"
        if fixture in metafunc.fixturenames:
            inventory = _inventory(metafunc.config)
            names = AnsibleRunner(inventory).get_hosts(group)
            if not names:
                _NO_HOSTS.add(metafunc.definition.nodeid)
            metafunc.parametrize(fixture, names, ids=names, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # An empty parameter set would be reported as a skip: these tests do not apply here.
    dropped = [item for item in items if item.nodeid.split("[", 1)[0] in _NO_HOSTS]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def _host_fixture(request: pytest.FixtureRequest):
    import testinfra

    inventory = _inventory(request.config)
    return testinfra.get_host(f"ansible://{request.param}", ansible_inventory=inventory)


for _name in (*(f"{g}_host" for g in GROUPS), "any_host"):  # any_host: every host
    globals()[_name] = pytest.fixture(_host_fixture, name=_name)


_RENDERED: dict[tuple[str, str], object] = {}


def var(host, name: str, default: object) -> object:
    """`name` as Ansible renders it for `host` (inventory and group_vars, templates resolved),
    or `default` (the role's default) when the inventory does not set it."""

    key = (host.backend.host, name)
    raw = host.ansible.get_variables()
    if name not in raw:
        return default
    if "{{" not in json.dumps(raw[name]):
        return raw[name]
    if key not in _RENDERED:
        expr = f"{{{{ {name} | default({json.dumps(default)}) | to_json }}}}"
        out = host.ansible("ansible.builtin.debug", f"msg='{expr}'", check=False)
        _RENDERED[key] = json.loads(out["msg"]) if isinstance(out["msg"], str) else out["msg"]
    return _RENDERED[key]
