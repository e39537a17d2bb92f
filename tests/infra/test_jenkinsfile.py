"""The Jenkinsfile compiles (Groovy syntax), lints with zero errors (npm-groovy-lint), holds no
executor while it waits, takes its approvers from the controller's configuration, runs stage 0,
stages 1-5 and the teardown in order, and calls only make targets that exist. jenkins/ parses,
defines every credential the pipeline names, and holds no secret and no AWS key."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from infrahelpers import (
    INFRA_TESTS,
    JENKINSFILE,
    REPO,
    explain,
    groovy,
    groovy_lint,
    java_home,
    run,
)

MIGRATION = [
    "Stage 1: mongo",
    "Stage 2: dual",
    "Stage 3: mysql-primary",
    "Stage 4: backfill",
    "Stage 5: mysql",
]
STAGES = [
    "Stage 0: plan",
    "Stage 0: approve",
    "Stage 0: approve database changes",
    "Stage 0: apply",
    *MIGRATION,
    "Teardown: plan",
    "Teardown: approve",
    "Teardown: approve database changes",
    "Teardown: apply",
]
APPROVALS = [
    "Stage 0: approve",
    "Stage 0: approve database changes",
    *MIGRATION,
    "Teardown: approve",
    "Teardown: approve database changes",
]
TEXT = JENKINSFILE.read_text()
CASC = yaml.safe_load((REPO / "jenkins" / "casc.yaml").read_text())


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
    options = TEXT[TEXT.index("options {") : TEXT.index("stages {")]
    assert "timeout(time:" in options


def _block(body: str, name: str) -> str:
    """Text of the first `name { ... }` block inside `body`."""
    start = body.index(f"{name} {{")
    depth = 0
    for j in range(body.index("{", start), len(body)):
        depth += {"{": 1, "}": -1}.get(body[j], 0)
        if depth == 0:
            return body[start : j + 1]
    raise AssertionError(name)


def test_no_executor_is_held_at_the_top_or_while_waiting():
    pipeline = TEXT[TEXT.index("pipeline {") :]
    assert re.search(r"^pipeline \{\n\s+agent none\n", pipeline, re.M), "top-level agent none"
    assert pipeline.count("agent {") == len(STAGES) - len(APPROVALS) + len(MIGRATION)
    for name in STAGES:
        body = _stage_body(name)
        if "sh " in body or "Stage(" in body or "applyPlan(" in body or "recordPlan(" in body:
            assert "agent { label 'lazyshift' }" in body, f"{name} runs commands without agent"
    for name in APPROVALS:
        body = _stage_body(name)
        assert "input {" in body, f"{name}: approval is not a stage-level input"
        when = _block(body, "when")
        assert "beforeAgent true" in when and "beforeInput true" in when, name
        assert "timeout(time:" in _block(body, "options"), f"{name}: an approval must time out"
        if "agent {" in body:
            assert body.index("input {") < body.index("agent {"), name


def test_approvers_come_from_the_controller_not_from_parameters():
    submitters = re.findall(r'submitter "([^"]+)"', TEXT)
    assert len(submitters) == len(APPROVALS)
    assert set(submitters) == {"${env.LAZYSHIFT_APPROVERS}", "${env.LAZYSHIFT_DB_APPROVERS}"}
    assert "params.APPROVERS" not in TEXT and "name: 'APPROVERS'" not in TEXT
    for name in APPROVALS:
        wanted = "LAZYSHIFT_DB_APPROVERS" if "database" in name else "LAZYSHIFT_APPROVERS"
        assert f'submitter "${{env.{wanted}}}"' in _stage_body(name), name
    post = TEXT[TEXT.rindex("post {") :]
    assert "submitter: env.LAZYSHIFT_APPROVERS" in post
    env = {
        e["key"]: e["value"]
        for prop in CASC["jenkins"]["globalNodeProperties"]
        for e in prop["envVars"]["env"]
    }
    assert env["LAZYSHIFT_APPROVERS"] == "lazyshift-approvers"
    assert env["LAZYSHIFT_DB_APPROVERS"] == "lazyshift-dba"


def test_stage_order_and_names():
    positions = [TEXT.index(f"stage('{name}')") for name in STAGES]
    assert positions == sorted(positions)
    assert len(re.findall(r"\bstage\('", TEXT)) == len(STAGES)


def test_stage0_applies_exactly_the_approved_plan_with_a_second_approval_for_databases():
    plan = _stage_body("Stage 0: plan")
    assert 'sh "make stage0 ENV=${params.ENV} STEP=plan"' in plan
    assert "env.STAGE0_SHA = plan.plan_sha256" in plan
    assert "env.STAGE0_DB = plan.needs_database_approval" in plan
    approve = _stage_body("Stage 0: approve")
    assert "env.STAGE0_CHANGES == 'true'" in approve and "${env.STAGE0_MESSAGE}" in approve
    db = _stage_body("Stage 0: approve database changes")
    assert "env.STAGE0_DB == 'true'" in db and "env.STAGE0_DB_APPROVED = env.STAGE0_SHA" in db
    apply = _stage_body("Stage 0: apply")
    assert "env.STAGE0_SHA, env.STAGE0_DB_APPROVED" in apply
    fn = _function_body("applyPlan")
    assert "unstash(" in fn and "STEP=apply" in fn
    assert "APPROVED_PLAN=${sha} APPROVED_DB_CHANGES=${dbApproved" in fn
    record = _function_body("recordPlan")
    assert 'readJSON(file: "${dir}/summary.json")' in record
    assert "archiveArtifacts(" in record and "stash(" in record
    teardown = _stage_body("Teardown: plan")
    assert 'sh "make teardown ENV=${params.ENV} STEP=plan"' in teardown
    assert "params.TEARDOWN" in teardown


@pytest.mark.parametrize("number", range(1, 6))
def test_each_migration_stage_runs_its_make_target_and_gate(number):
    body = _stage_body(MIGRATION[number - 1])
    assert f"wanted(params, {number})" in body
    assert f"migrationStage(params, {number})" in body
    fn = _function_body("migrationStage")
    assert 'sh "make stage0 ENV=${params.ENV} STEP=handover"' in fn
    assert 'sh "make stage${stageNumber} INVENTORY=aws ENV=${params.ENV}"' in fn
    assert 'sh "make gate INVENTORY=aws ENV=${params.ENV}"' in fn
    assert 'readProperties(file: ".state/infra/${params.ENV}/handover.env")' in fn
    assert fn.index("STEP=handover") < fn.index("withEnv(handover") < fn.index("make stage${")
    assert fn.index("make stage${stageNumber}") < fn.index("make gate")


def test_failure_offers_rollback():
    post = TEXT[TEXT.rindex("post {") :]
    failure = post[post.index("failure {") :]
    assert "input(" in failure and "node('lazyshift')" in failure
    assert 'sh "make rollback INVENTORY=aws ENV=${params.ENV}"' in failure
    assert failure.index("STEP=handover") < failure.index('sh "make rollback')


def _make_targets() -> set[str]:
    targets = set()
    for path in [REPO / "Makefile", *(REPO / "mk").glob("*.mk")]:
        targets |= set(re.findall(r"^([A-Za-z0-9_.-]+):", path.read_text(), re.M))
    return targets


def _sh_commands() -> list[str]:
    return [c for _, c in re.findall(r"\bsh[ (]+(['\"])(.+?)\1", TEXT)]


def test_sh_steps_are_make_targets_that_exist():
    """Fails until mk/infra.mk (stage1..stage5, gate, rollback) is merged."""
    commands = _sh_commands()
    assert len(commands) >= 6
    named = set()
    for command in commands:
        argv = command.split()
        assert argv[0] == "make", f"the Jenkinsfile runs only make targets: {command}"
        target = argv[1]
        if target == "stage${stageNumber}":
            named |= {f"stage{n}" for n in range(1, 6)}
        elif target == "${target}":
            applied = re.findall(r"applyPlan\(params, '([a-z0-9]+)'", TEXT)
            assert applied == ["stage0", "teardown"], applied
            named |= set(applied)
        else:
            assert "$" not in target, command
            named.add(target)
        assert "ENV=${params.ENV}" in argv, f"{command}: every target gets the environment"
    assert named == {
        "stage0",
        "stage1",
        "stage2",
        "stage3",
        "stage4",
        "stage5",
        "gate",
        "rollback",
        "teardown",
    }
    missing = named - _make_targets()
    assert not missing, f"make targets that do not exist: {sorted(missing)}"


def _casc_credentials() -> dict[str, dict]:
    creds = CASC["credentials"]["system"]["domainCredentials"][0]["credentials"]
    out = {}
    for cred in creds:
        ((kind, body),) = cred.items()
        out[body["id"]] = {"kind": kind, **body}
    return out


def test_every_credential_the_pipeline_names_is_defined_and_none_is_aws():
    creds = _casc_credentials()
    used = set(re.findall(r"credentialsId: '([^']+)'", TEXT))
    used |= set(re.findall(r"credentials: \['([^']+)'\]", TEXT))
    used |= set(re.findall(r"credentials\('([^']+)'\)", TEXT))
    used |= set(re.findall(r"credentials\('([^']+)'\)", CASC["jobs"][0]["script"]))
    assert {"lazyshift-ssh", "lazyshift-mysql-app-password", "lazyshift-git"} <= used
    assert used <= set(creds), f"credential IDs not declared in casc.yaml: {used - set(creds)}"
    for cid, body in creds.items():
        for key in ("secret", "secretBytes", "password"):
            if key in body:
                assert str(body[key]).startswith("${"), f"{cid}: {key} must be a placeholder"
        key = body.get("privateKeySource", {}).get("directEntry", {}).get("privateKey")
        if key is not None:
            assert key.startswith("${"), cid
        assert "aws" not in cid.lower(), f"{cid}: AWS access is the agent's instance role"
    for text in (TEXT, (REPO / "jenkins" / "casc.yaml").read_text()):
        assert not re.search(r"AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)", text)
    assert creds["lazyshift-ssh"]["username"] == "admin", "Debian 12 AMIs log in as admin"


def test_casc_security_realm_and_authorization():
    jenkins = CASC["jenkins"]
    ldap = jenkins["securityRealm"]["ldap"]["configurations"][0]
    assert ldap["server"].startswith("${") and ldap["managerPasswordSecret"].startswith("${")
    entries = jenkins["authorizationStrategy"]["globalMatrix"]["entries"]
    groups = {e["group"]["name"]: e["group"]["permissions"] for e in entries if "group" in e}
    assert "Overall/Administer" in groups["lazyshift-admins"]
    assert "Job/Build" in groups["lazyshift-approvers"]
    assert not any("anonymous" in json.dumps(e).lower() for e in entries)
    for name, perms in groups.items():
        if name != "lazyshift-admins":
            assert "Overall/Administer" not in perms, name
    assert jenkins["numExecutors"] == 0, "nothing runs on the controller"
    script = CASC["jobs"][0]["script"]
    assert "pipelineJob('lazyshift-migration')" in script
    assert "scriptPath('Jenkinsfile')" in script
    resources = CASC["unclassified"]["lockableResourcesManager"]["declaredResources"]
    assert {"name": "lazyshift-migration"}.items() <= resources[0].items()


def test_core_and_plugins_are_pinned_together():
    core = (REPO / "jenkins" / "jenkins-version.txt").read_text().strip()
    assert re.fullmatch(r"2\.\d{3}\.\d+", core), "an LTS core version"
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
        "pipeline-input-step",
        "timestamper",
        "pipeline-utility-steps",
        "ssh-agent",
        "credentials-binding",
        "ansicolor",
        "matrix-auth",
        "ldap",
    ):
        assert needed in names, needed
