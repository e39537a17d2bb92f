"""Static and mocked checks of terraform/: fmt, validate, `terraform test`, checkov, style."""

from __future__ import annotations

import json
import os
import re

import pytest
from tfhelpers import ENVS, REPO, ROOT_MODULES, TF_DIR, run, terraform_bin

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def test_fmt_check_recursive(tf_env):
    run([terraform_bin(), "fmt", "-check", "-recursive", "-diff", "-no-color"], TF_DIR, tf_env)


@pytest.mark.parametrize("module", ROOT_MODULES)
def test_validate(tf_copy, tf_env, module):
    proc = run([terraform_bin(), "validate", "-json", "-no-color"], tf_copy / module, tf_env)
    result = json.loads(proc.stdout)
    assert result["valid"], result
    assert result["error_count"] == 0, result


@pytest.mark.parametrize("module", ROOT_MODULES)
def test_terraform_test_with_mock_provider(tf_copy, tf_env, module):
    tests = sorted((tf_copy / module / "tests").glob("*.tftest.hcl"))
    assert tests, f"{module} has no tests/*.tftest.hcl"
    for t in tests:
        assert 'mock_provider "aws"' in t.read_text(), f"{t.name} must mock the aws provider"
    proc = run([terraform_bin(), "test", "-no-color"], tf_copy / module, tf_env)
    assert re.search(r"Success! \d+ passed, 0 failed", proc.stdout), proc.stdout


def test_envs_share_their_composition():
    """dev and prod differ only in variable defaults and backend settings."""
    for name in ("main.tf", "outputs.tf", "versions.tf"):
        dev = (TF_DIR / "envs/dev" / name).read_text()
        prod = (TF_DIR / "envs/prod" / name).read_text()
        assert dev == prod, f"envs/dev/{name} and envs/prod/{name} drifted apart"


def _blocks(text: str, kind: str):
    """Yield (name, body) of top-level `kind "name" { ... }` blocks (brace matching)."""
    for m in re.finditer(rf'^{kind} "([^"]+)" \{{', text, re.M):
        depth, i = 0, m.end() - 1
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        yield m.group(1), text[m.end() : i]


def test_every_variable_has_type_and_description_and_outputs_describe():
    for tf in TF_DIR.rglob("*.tf"):
        if ".terraform" in tf.parts:
            continue
        text = tf.read_text()
        for name, body in _blocks(text, "variable"):
            assert re.search(r"^\s{2}type\s*=", body, re.M), f"{tf}: variable {name} has no type"
            assert re.search(r"^\s{2}description\s*=", body, re.M), (
                f"{tf}: variable {name} has no description"
            )
        for name, body in _blocks(text, "output"):
            assert re.search(r"^\s{2}description\s*=", body, re.M), (
                f"{tf}: output {name} has no description"
            )


def test_versions_pin_terraform_and_aws_provider():
    for module in ROOT_MODULES:
        text = (TF_DIR / module / "versions.tf").read_text()
        assert re.search(r'required_version\s*=\s*">= 1\.9', text), module
        assert 'source  = "hashicorp/aws"' in text, module
        assert re.search(r'version\s*=\s*"[~>=]', text), module


def test_envs_use_partial_s3_backend_and_ship_an_example():
    for env in ENVS:
        assert re.search(r'backend "s3" \{\}', (TF_DIR / env / "versions.tf").read_text()), env
        example = (TF_DIR / env / "backend.hcl.example").read_text()
        for key in ("bucket", "key", "region", "dynamodb_table"):
            assert re.search(rf"^{key}\s*=", example, re.M), f"{env}: backend example lacks {key}"
        assert not re.search(r"(access_key|secret_key|token)\s*=", example)


def test_every_root_module_has_a_readme():
    assert (TF_DIR / "README.md").is_file()
    for module in ROOT_MODULES:
        assert (TF_DIR / module / "README.md").is_file(), f"{module}/README.md missing"


def test_no_test_override_or_state_in_the_repository():
    leftovers = [
        p
        for p in TF_DIR.rglob("*")
        if p.name.endswith(("_override.tf", "_override.tf.json", ".tfstate"))
    ]
    assert not leftovers, f"test-only or state files in terraform/: {leftovers}"


def test_outputs_carry_no_secrets():
    for env in ENVS:
        text = (TF_DIR / env / "outputs.tf").read_text()
        assert "sensitive" not in text
        assert not re.search(r"password|secret|private_key", text, re.I)


def test_checkov_has_no_failed_checks(tmp_path):
    if not CHECKOV.exists():
        pytest.fail(f"checkov not installed at {CHECKOV}: run `make deps-terraform`")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="ERROR")
    proc = run(
        [
            str(CHECKOV),
            "-d",
            str(TF_DIR),
            "--framework",
            "terraform",
            "--skip-download",
            "-o",
            "json",
            "--output-file-path",
            str(tmp_path),
        ],
        tmp_path,
        env,
        ok=(0, 1),
    )
    report = json.loads((tmp_path / "results_json.json").read_text())
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, "checkov failed checks:\n" + "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']}" for c in failed
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 50, "checkov found suspiciously few checks to run"
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    # Every skip is an inline comment that gives its reason.
    for r in reports:
        for c in r["results"]["skipped_checks"]:
            reason = (c.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) > 15, (
                f"skip of {c['check_id']} on {c['resource']} lacks a reason"
            )
