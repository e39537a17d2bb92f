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


def _top_level_kinds(text: str) -> set[str]:
    """Kinds of the top-level blocks of a .tf file (resource, module, variable, ...)."""
    return set(re.findall(r"^([a-z_]+)\b[^=\n]*\{", text, re.M))


def test_envs_only_wire_variables_into_the_stack():
    """Each env is a thin root module: its variables go unchanged into modules/stack, its
    outputs are the stack's, and nothing else (no resource, data, locals) lives there."""
    stack = TF_DIR / "modules/stack"
    stack_vars = {n for n, _ in _blocks((stack / "variables.tf").read_text(), "variable")}
    stack_outputs = {n for n, _ in _blocks((stack / "outputs.tf").read_text(), "output")}
    assert stack_vars and stack_outputs
    for env in ENVS:
        texts = {tf.name: tf.read_text() for tf in sorted((TF_DIR / env).glob("*.tf"))}
        for name, text in texts.items():
            kinds = _top_level_kinds(text)
            assert kinds <= {"terraform", "provider", "variable", "output", "module", "moved"}, (
                f"{env}/{name} declares {sorted(kinds)}: resources and logic belong in modules/"
            )
        main = texts["main.tf"]
        modules = dict(_blocks(main, "module"))
        assert list(modules) == ["stack"], f"{env} must call only modules/stack"
        body = modules["stack"]
        assert re.search(r'^\s*source\s*=\s*"\.\./\.\./modules/stack"\s*$', body, re.M), env
        args = dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", body, re.M))
        args.pop("source")
        assert args == {v: f"var.{v}" for v in stack_vars}, (
            f"{env}: module.stack must get every stack variable as var.<same name>"
        )
        env_vars = dict(_blocks(texts["variables.tf"], "variable"))
        assert set(env_vars) == stack_vars, f"{env}: variables differ from modules/stack's"
        for name, vbody in env_vars.items():
            assert "validation" not in vbody, f"{env}: validate {name} in modules/stack only"
        env_outputs = dict(_blocks(texts["outputs.tf"], "output"))
        assert set(env_outputs) == stack_outputs, f"{env}: outputs differ from modules/stack's"
        for name, obody in env_outputs.items():
            assert re.search(rf"^\s*value\s*=\s*module\.stack\.{name}\s*$", obody, re.M), (
                f"{env}: output {name} must forward module.stack.{name}"
            )


def test_stack_leaves_providers_and_backend_to_the_envs():
    for tf in (TF_DIR / "modules/stack").glob("*.tf"):
        text = tf.read_text()
        assert not re.search(r'^provider "', text, re.M), f"{tf}: providers belong to the envs"
        assert "backend" not in _top_level_kinds(text) and not re.search(
            r"^\s*backend\s", text, re.M
        ), f"{tf}: the backend belongs to the envs"


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
        # 1.10 where the S3 backend's use_lockfile is needed (envs, bootstrap).
        assert re.search(r'required_version\s*=\s*">= 1\.(9|1[0-9])', text), module
        assert 'source  = "hashicorp/aws"' in text, module
        assert re.search(r'version\s*=\s*"[~>=]', text), module


def test_envs_use_partial_s3_backend_with_native_locking():
    for env in ENVS:
        assert re.search(r'backend "s3" \{\}', (TF_DIR / env / "versions.tf").read_text()), env
        name = env.split("/")[-1]
        backend = (TF_DIR / env / f"{name}.s3.tfbackend").read_text()
        assert re.search(rf'^key\s*=\s*"lazyshift/{name}/terraform.tfstate"', backend, re.M)
        assert re.search(r"^use_lockfile\s*=\s*true", backend, re.M), env
        assert re.search(r"^encrypt\s*=\s*true", backend, re.M), env
        # The DynamoDB lock argument is deprecated from Terraform 1.11.
        assert "dynamodb_table" not in backend
        assert not re.search(r"(access_key|secret_key|token)\s*=", backend)


def test_every_root_has_a_committed_lock_file_with_hashes_for_every_platform():
    """linux_amd64's h1 (what the mirror installs) plus the registry's zh checksums of every
    platform's package, so init verifies on Linux, macOS and Windows alike."""
    for module in ROOT_MODULES:
        lock = (TF_DIR / module / ".terraform.lock.hcl").read_text()
        assert 'provider "registry.terraform.io/hashicorp/aws"' in lock, module
        assert 'version     = "5.100.0"' in lock, module
        assert len(re.findall(r'"h1:[A-Za-z0-9+/=]{44}"', lock)) >= 1, module
        assert len(re.findall(r'"zh:[0-9a-f]{64}"', lock)) >= 14, module
    ignored = (TF_DIR / ".gitignore").read_text() + (REPO / ".gitignore").read_text()
    assert ".terraform.lock.hcl" not in ignored


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
    for module in [*ENVS, "modules/stack"]:
        text = (TF_DIR / module / "outputs.tf").read_text()
        assert "sensitive" not in text
        assert not re.search(r"password|secret|private_key", text, re.I)


def test_checkov_has_no_failed_checks(tmp_path):
    if not CHECKOV.exists():
        pytest.fail(f"checkov not installed at {CHECKOV}: run `make deps-terraform`")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="ERROR")
    proc = run(
        [
            # Through its interpreter: checkov's script has a plain `#!<venv>/bin/python`
            # line, which the kernel cannot run when the checkout path has a space.
            str(CHECKOV.parent / "python"),
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
