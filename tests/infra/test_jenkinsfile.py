"""The Jenkinsfile compiles (Groovy syntax), lints with zero errors (npm-groovy-lint), has one
gated stage per migration stage, and runs only commands that exist. jenkins/ parses and holds
no secret."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml
from infrahelpers import (
    ANSIBLE_DIR,
    INFRA_TESTS,
    JENKINSFILE,
    LAZYSHIFT,
    REPO,
    explain,
    groovy,
    groovy_lint,
    java_home,
    run,
)

STAGES = [
    ("Stage 1: mongo", "stage1-mongo.yml"),
    ("Stage 2: dual", "stage2-dual.yml"),
    ("Stage 3: mysql-primary", "stage3-mysql-primary.yml"),
    ("Stage 4: backfill", "stage4-backfill.yml"),
    ("Stage 5: mysql", "stage5-mysql.yml"),
]
TEXT = JENKINSFILE.read_text()


def _stage_body(name: str) -> str:
    """Text of `stage('<name>') { ... }` (brace matching; the file has no braces in strings
    inside stages that would unbalance it)."""
    start = TEXT.index(f"stage('{name}')")
    depth, i = 0, TEXT.index("{", start)
    for j in range(i, len(TEXT)):
        depth += {"{": 1, "}": -1}.get(TEXT[j], 0)
        if depth == 0:
            return TEXT[i : j + 1]
    raise AssertionError(f"unbalanced stage {name}")


def _function_body(name: str) -> str:
    m = re.search(rf"^\w+ {name}\([^)]*\) \{{", TEXT, re.M)
    assert m, f"function {name} not found"
    depth = 0
    for j in range(m.end() - 1, len(TEXT)):
        depth += {"{": 1, "}": -1}.get(TEXT[j], 0)
        if depth == 0:
            return TEXT[m.start() : j + 1]
    raise AssertionError(name)


def test_groovy_compiles_the_jenkinsfile(tmp_path):
    proc = run(
        [groovy(), str(INFRA_TESTS / "groovy_syntax.groovy"), str(JENKINSFILE)],
        env={"JAVA_HOME": java_home(), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert proc.returncode == 0, explain(proc)


def test_groovy_syntax_check_catches_a_broken_file(tmp_path):
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(TEXT.replace("stages {", "stages {{", 1))
    proc = run(
        [groovy(), str(INFRA_TESTS / "groovy_syntax.groovy"), str(broken)],
        env={"JAVA_HOME": java_home(), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert proc.returncode != 0


def test_npm_groovy_lint_finds_no_error(tmp_path):
    proc = run(
        [
            str(groovy_lint()),
            "--noserver",
            "--config",
            str(INFRA_TESTS / "groovylintrc.json"),
            "--output",
            "json",
            "--failon",
            "error",
            str(JENKINSFILE),
        ],
        cwd=tmp_path,
        timeout=150,
    )
    assert proc.returncode == 0, explain(proc)
    summary = json.loads(proc.stdout)["summary"]
    assert summary["totalFilesLinted"] == 1
    assert summary["totalFoundErrorNumber"] == 0, explain(proc)


def test_pipeline_options():
    for needle in (
        "timestamps()",
        "disableConcurrentBuilds()",
        "buildDiscarder(logRotator(",
        "lock(resource: 'lazyshift-migration')",
    ):
        assert needle in TEXT, needle
    options = TEXT[TEXT.index("options {") : TEXT.index("environment {")]
    assert "timeout(time:" in options


def test_approval_is_an_input_with_a_parameterised_submitter_and_a_timeout():
    body = _function_body("approve")
    assert "input(" in body and "submitter: params.APPROVERS" in body
    assert "timeout(" in body
    assert "string(name: 'APPROVERS'" in TEXT


@pytest.mark.parametrize(("name", "playbook"), STAGES)
def test_each_stage_has_milestone_approval_playbook(name, playbook):
    body = _stage_body(name)
    assert "milestone(" in body
    assert "approve(params, " in body
    assert body.index("approve(") < body.index("playbook(")
    assert f"playbook('{playbook}')" in body
    assert (ANSIBLE_DIR / playbook).is_file()


def test_stage_order_and_names():
    positions = [TEXT.index(f"stage('{name}')") for name, _ in STAGES]
    assert positions == sorted(positions)
    milestones = [int(x) for x in re.findall(r"milestone\(ordinal: (\d+)", TEXT)]
    assert milestones == sorted(milestones) and len(set(milestones)) == len(milestones)


def test_gates():
    gate = _function_body("statusGate")
    assert "lazyshift --json status" in gate and "gate.can_advance" in gate
    assert "statusGate('dual', true)" in _stage_body("Stage 2: dual")
    stage4 = _stage_body("Stage 4: backfill")
    assert "lazyshift verify --json" in stage4 and "--report verify.json" in stage4
    assert "archiveArtifacts(artifacts: 'verify.json'" in stage4
    playbook = _function_body("playbook")
    assert "ansible-playbook -i inventories/${params.INVENTORY} ansible/${name}" in playbook


def test_failure_offers_rollback():
    post = TEXT[TEXT.rindex("post {") :]
    failure = post[post.index("failure {") :]
    assert "input(" in failure and "submitter: params.APPROVERS" in failure
    assert "playbook('rollback.yml')" in failure
    assert (ANSIBLE_DIR / "rollback.yml").is_file()


def _lazyshift_help(*args: str) -> str:
    if not LAZYSHIFT.exists():
        pytest.fail(f"{LAZYSHIFT} not found: run `make deps-python`")
    proc = run([str(LAZYSHIFT), *args, "--help"])
    assert proc.returncode == 0, explain(proc)
    return proc.stdout


def _make_targets() -> set[str]:
    targets = set()
    for path in [REPO / "Makefile", *(REPO / "mk").glob("*.mk")]:
        targets |= set(re.findall(r"^([A-Za-z0-9_.-]+):", path.read_text(), re.M))
    return targets


def test_sh_steps_only_run_commands_that_exist():
    commands = re.findall(r"\bsh[ (]+(['\"])(.+?)\1", TEXT)
    assert commands
    top = _lazyshift_help()
    subcommands = set(re.findall(r"^  ([a-z-]+)\s", top.split("Commands:")[1], re.M))
    for _, command in commands:
        argv = shlex.split(command.split(">")[0])
        if argv[0] == "ansible-playbook":
            playbook = argv[-1].replace("${name}", "stage1-mongo.yml")
            assert playbook.startswith("ansible/"), command
        elif argv[0] == ".venv/bin/lazyshift":
            sub = next(a for a in argv[1:] if not a.startswith("-"))
            assert sub in subcommands, f"`lazyshift {sub}` does not exist: {command}"
            helptext = _lazyshift_help(sub)
            for flag in (a for a in argv[argv.index(sub) + 1 :] if a.startswith("--")):
                assert re.search(rf"{flag}\b", helptext), f"`lazyshift {sub}` has no {flag}"
        elif argv[0] == "make":
            missing = set(argv[1:]) - _make_targets()
            assert not missing, f"make targets that do not exist: {missing}"
        else:
            raise AssertionError(f"unexpected command in the Jenkinsfile: {command}")


def test_casc_and_plugins():
    casc = yaml.safe_load((REPO / "jenkins" / "casc.yaml").read_text())
    creds = casc["credentials"]["system"]["domainCredentials"][0]["credentials"]
    ids = set()
    for cred in creds:
        ((kind, body),) = cred.items()
        ids.add(body["id"])
        for key in ("secret", "secretBytes", "password"):
            if key in body:
                assert str(body[key]).startswith("${"), f"{body['id']}: {key} must be a placeholder"
        key = body.get("privateKeySource", {}).get("directEntry", {}).get("privateKey")
        if key is not None:
            assert key.startswith("${"), body["id"]
    used = set(re.findall(r"credentials\('([^']+)'\)", TEXT))
    used |= set(re.findall(r"credentials: \['([^']+)'\]", TEXT))
    assert used and used <= ids, f"credential IDs not declared in casc.yaml: {used - ids}"
    assert "pipelineJob('lazyshift-migration')" in casc["jobs"][0]["script"]
    assert "scriptPath('Jenkinsfile')" in casc["jobs"][0]["script"]
    resources = casc["unclassified"]["lockableResourcesManager"]["declaredResources"]
    assert {"name": "lazyshift-migration"}.items() <= resources[0].items()

    plugins = [
        ln.strip()
        for ln in (REPO / "jenkins" / "plugins.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    names = set()
    for line in plugins:
        name, _, version = line.partition(":")
        assert version and version != "latest", f"unpinned plugin: {line}"
        names.add(name)
    for needed in (
        "configuration-as-code",
        "job-dsl",
        "workflow-aggregator",
        "lockable-resources",
        "pipeline-milestone-step",
        "pipeline-input-step",
        "timestamper",
        "pipeline-utility-steps",
        "ssh-agent",
        "credentials-binding",
        "ansicolor",
    ):
        assert needed in names, needed
