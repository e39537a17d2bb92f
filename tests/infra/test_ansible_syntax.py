"""Every playbook passes `ansible-playbook --syntax-check` with every offline inventory, and
the inventories parse: local with ansible-inventory, aws structurally (it needs the EC2 API)."""

from __future__ import annotations

import json

import pytest
import yaml
from infrahelpers import (
    ANSIBLE_DIR,
    INVENTORIES,
    OFFLINE_INVENTORIES,
    STAGE_PLAYBOOKS,
    explain,
    run,
    tool,
)

GROUPS = {"mongodb", "mysql", "source", "client", "tools"}


def test_every_playbook_in_ansible_dir_is_a_stage_or_rollback():
    found = sorted(p.name for p in ANSIBLE_DIR.glob("*.yml"))
    assert found == sorted(STAGE_PLAYBOOKS)


@pytest.mark.parametrize("inventory", OFFLINE_INVENTORIES)
@pytest.mark.parametrize("playbook", STAGE_PLAYBOOKS)
def test_syntax_check(playbook, inventory, module_ansible_environ):
    proc = run(
        [
            tool("ansible-playbook"),
            "-i",
            str(INVENTORIES / inventory),
            "--syntax-check",
            str(ANSIBLE_DIR / playbook),
        ],
        env=module_ansible_environ,
    )
    assert proc.returncode == 0, explain(proc)
    assert "ERROR" not in proc.stderr, explain(proc)


def test_local_inventory_lists_every_group_on_localhost(module_ansible_environ):
    proc = run(
        [tool("ansible-inventory"), "-i", str(INVENTORIES / "local"), "--list"],
        env=module_ansible_environ,
    )
    assert proc.returncode == 0, explain(proc)
    inv = json.loads(proc.stdout)
    for group in GROUPS:
        assert inv[group]["hosts"] == ["localhost"], group
    host = inv["_meta"]["hostvars"]["localhost"]
    assert host["ansible_connection"] == "local"
    # Interpreter discovery would pick a broken pyenv shim: it must be pinned.
    assert host["ansible_python_interpreter"] == "/usr/bin/python3"


def test_local_inventory_resolves_paths_inside_the_repository(module_ansible_environ):
    proc = run(
        [
            tool("ansible"),
            "-i",
            str(INVENTORIES / "local"),
            "localhost",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "var=lazyshift_common_state_dir",
        ],
        env=module_ansible_environ,
    )
    assert proc.returncode == 0, explain(proc)
    assert str(INVENTORIES.parent / ".state" / "ansible-local" / "lib") in proc.stdout


def _aws_inventory(env: str = "qa") -> dict:
    """The aws inventory as `make aws-inventory ENV=qa` renders it (the template's @ENV@)."""
    text = (INVENTORIES / "aws" / "aws_ec2.yml.in").read_text()
    return yaml.safe_load(text.replace("@ENV@", env))


def test_aws_inventory_is_an_ec2_plugin_config_grouping_by_role_tag():
    doc = _aws_inventory()
    assert doc["plugin"] == "amazon.aws.aws_ec2"
    # The region comes from AWS_REGION (a template the plugin renders), not a literal.
    assert doc["regions"] == ["{{ lookup('ansible.builtin.env', 'AWS_REGION') }}"]
    filters = doc["filters"]
    assert filters["tag:Project"] == "lazyshift"
    assert filters["tag:Environment"] == "qa"
    by_role = [g for g in doc["keyed_groups"] if g["key"] == "tags.Role"]
    assert by_role, "hosts must be grouped by their Role tag"
    # No prefix and no separator: Role=mysql gives the group `mysql` the playbooks target.
    assert by_role[0].get("prefix") == "" and by_role[0].get("separator") == ""
    assert "ansible_host" in doc["compose"]


def test_aws_inventory_options_are_ones_the_plugin_documents(module_ansible_environ):
    """Structural validation against the installed amazon.aws.aws_ec2 plugin's own schema."""
    proc = run(
        [tool("ansible-doc"), "-t", "inventory", "--json", "amazon.aws.aws_ec2"],
        env=module_ansible_environ,
    )
    assert proc.returncode == 0, explain(proc)
    options = json.loads(proc.stdout)["amazon.aws.aws_ec2"]["doc"]["options"]
    doc = _aws_inventory()
    unknown = sorted(set(doc) - set(options) - {"plugin"})
    assert not unknown, f"options the aws_ec2 plugin does not have: {unknown}"
    for key in ("keyed_groups", "filters", "hostnames", "regions", "compose"):
        assert isinstance(doc[key], list if options[key]["type"] == "list" else dict), key


def test_aws_roles_match_the_terraform_role_tags():
    """The groups the playbooks target are Role tag values Terraform can set (the host
    module validates its `role`, which becomes the Role tag)."""
    tf = (INVENTORIES.parent / "terraform" / "modules" / "host" / "variables.tf").read_text()
    for group in GROUPS:
        assert f'"{group}"' in tf, group


def test_make_refuses_aws_without_env_and_renders_one_inventory_per_env(tmp_path):
    root = INVENTORIES.parent
    proc = run(["make", "-s", "infra-check", "INVENTORY=aws", "ENV="], cwd=root)
    assert proc.returncode == 2, explain(proc)
    assert "needs ENV" in proc.stderr, explain(proc)
    proc = run(["make", "-s", "aws-inventory", "ENV=qa", f"STATE={tmp_path}"], cwd=root)
    assert proc.returncode == 0, explain(proc)
    rendered = tmp_path / "aws" / "qa" / "lazyshift.aws_ec2.yml"
    assert yaml.safe_load(rendered.read_text())["filters"]["tag:Environment"] == "qa"
    assert (rendered.parent / "group_vars" / "all.yml").is_file()


def test_no_environment_or_network_is_hard_coded_in_the_aws_inventory():
    text = "".join(p.read_text() for p in (INVENTORIES / "aws").rglob("*.y*"))
    for literal in ("10.40.", "lazyshift-dev", "Environment: dev", "eu-west-1"):
        assert literal not in text, literal


@pytest.mark.parametrize("inventory", ["local", "aws", "lab"])
def test_group_vars_parse_and_hold_no_secret(inventory):
    for path in (INVENTORIES / inventory / "group_vars").glob("*.yml"):
        doc = yaml.safe_load(path.read_text()) or {}
        for key, value in doc.items():
            if "password" in key or "secret" in key:
                assert "lookup(" in str(value), f"{path}: {key} must come from env/vault"
