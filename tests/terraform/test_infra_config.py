"""tools/lazyshift/infra_config.py: lazyshift config and Ansible inventory from Terraform.

fixtures/dev_outputs.json is a real `terraform output -json` of envs/dev, captured from the
moto apply in test_moto_apply.py (which also renders its own live outputs).
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tfhelpers import REPO

FIXTURE = Path(__file__).with_name("fixtures") / "dev_outputs.json"
SCRIPT = REPO / "tools/lazyshift/infra_config.py"


def _load():
    spec = importlib.util.spec_from_file_location("lazyshift_infra_config", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


infra_config = _load()


@pytest.fixture
def outputs() -> dict:
    return json.loads(FIXTURE.read_text())


def test_config_has_the_lazyshift_keys(outputs):
    cfg = infra_config.render(outputs)["config"]
    v = {k: o["value"] for k, o in outputs.items()}
    assert cfg == {
        "environment": "dev",
        "mysql": {"host": v["mysql_host"], "port": 3306, "database": "lazyshift"},
        "mongo": {"uri": f"mongodb://{v['mongodb_host']}:27017/"},
        "source": {"host": v["source_host"], "port": 8282},
        "archive": {"s3_bucket": v["archive_bucket"]},
    }


def test_inventory_groups_hosts_by_role_behind_the_bastion(outputs):
    inv = infra_config.render(outputs)["inventory"]["all"]
    hosts = outputs["hosts"]["value"]
    bastion_ip = outputs["bastion_public_ip"]["value"]
    assert sorted(inv["children"]) == sorted({h["role"] for h in hosts.values()})
    for name, h in hosts.items():
        group = inv["children"][h["role"]]
        entry = group["hosts"][name]
        assert entry["instance_id"] == h["id"]
        if h["role"] == "bastion":
            assert entry["ansible_host"] == bastion_ip
            assert "vars" not in group
        else:
            assert entry["ansible_host"] == h["private_ip"]
            assert group["vars"]["ansible_ssh_common_args"] == f"-o ProxyJump=ubuntu@{bastion_ip}"
    assert inv["vars"]["ansible_user"] == "ubuntu"
    assert inv["vars"]["lazyshift_environment"] == "dev"


def test_plain_values_render_the_same(outputs):
    plain = {k: o["value"] for k, o in outputs.items()}
    assert infra_config.render(plain) == infra_config.render(outputs)


def test_after_stage_5_there_is_no_mongo_uri(outputs):
    o = copy.deepcopy(outputs)
    o["mongodb_host"]["value"] = None
    o["hosts"]["value"] = {n: h for n, h in o["hosts"]["value"].items() if h["role"] != "mongodb"}
    rendered = infra_config.render(o)
    assert rendered["config"]["mongo"] == {"uri": None}
    assert "mongodb" not in rendered["inventory"]["all"]["children"]


def test_missing_outputs_are_an_error(outputs):
    o = copy.deepcopy(outputs)
    del o["mysql_host"]
    with pytest.raises(infra_config.OutputsError, match="mysql_host"):
        infra_config.render(o)


def test_sensitive_outputs_are_refused(outputs):
    o = copy.deepcopy(outputs)
    o["archive_bucket"]["sensitive"] = True
    with pytest.raises(infra_config.OutputsError, match="sensitive"):
        infra_config.render(o)


def test_main_reads_a_file_and_writes_both_documents(tmp_path, outputs):
    cfg, inv = tmp_path / "lazyshift.json", tmp_path / "inventory.json"
    rc = infra_config.main([str(FIXTURE), "--config-out", str(cfg), "--inventory-out", str(inv)])
    assert rc == 0
    expected = infra_config.render(outputs)
    assert json.loads(cfg.read_text()) == expected["config"]
    assert json.loads(inv.read_text()) == expected["inventory"]


def test_main_reads_stdin_and_prints_json(monkeypatch, capsys, outputs):
    monkeypatch.setattr(sys, "stdin", io.StringIO(FIXTURE.read_text()))
    assert infra_config.main([]) == 0
    assert json.loads(capsys.readouterr().out) == infra_config.render(outputs)


def test_main_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert infra_config.main([str(bad)]) == 2
    assert "lack" in capsys.readouterr().err


def test_runs_as_a_script_on_piped_terraform_output():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=FIXTURE.read_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout)["config"]["environment"] == "dev"
