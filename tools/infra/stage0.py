"""Stage 0: provision an environment with Terraform, approved plan by approved plan.

    stage0.py plan  --env dev [--scope stage0|teardown|all]   plan, archive, summarise
    stage0.py apply --env dev --approved SHA [--approved-db SHA]   apply exactly that plan
    stage0.py run   --env dev [--scope ...]                    plan, ask at the terminal, apply
    stage0.py handover --env dev                               outputs -> .state/infra/<env>/
                                                               (handover.env, outputs.json)
    stage0.py bootstrap --region R                             the state bucket (creations only)

`make stage0 ENV=dev` and `make teardown ENV=dev` (mk/stage0.mk) call it; Jenkins calls the
same targets with STEP=plan, then STEP=apply APPROVED_PLAN=<sha256 of the plan file>.

Rules kept here, whoever calls:
- an approval names the plan file's sha256, and only that file is applied;
- a plan that destroys or replaces a database host (Role mongodb/mysql) or its data volume
  needs a second approval naming the same sha256 (`--approved-db`);
- teardown (MongoDB host and volume) and a full destroy are planned only once the stage 5
  archive is recorded: its manifest and data file are in the archive bucket.

Exit codes: 0 done, 1 refused (not approved, archive missing), 2 usage, 3 terraform or AWS
unavailable or failing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tfcli import Terraform, TerraformError

DATABASE_ROLES = ("mongodb", "mysql")
DATABASE_TYPES = ("aws_instance", "aws_ebs_volume")
SCOPES = ("stage0", "teardown", "all")
ARCHIVE_FORMAT = "lazyshift-archive/1"


class Refused(Exception):
    """A rule stops the step; the message says which and what to do."""


class Unavailable(Exception):
    """terraform or AWS cannot be reached or failed."""


# -- the plan ------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _role_of(change: dict[str, Any]) -> str | None:
    before = change.get("change", {}).get("before") or {}
    return (before.get("tags") or {}).get("Role")


def database_changes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Resources of a database host (its instance or data volume) the plan destroys or
    replaces: whatever the address, a resource is a database's by its Role tag."""
    found = []
    for rc in plan.get("resource_changes", []):
        actions = rc.get("change", {}).get("actions", [])
        if rc.get("type") in DATABASE_TYPES and "delete" in actions:
            role = _role_of(rc)
            if role in DATABASE_ROLES:
                found.append({"address": rc["address"], "role": role, "actions": actions})
    return found


def summarise(plan: dict[str, Any], plan_sha: str, env: str, scope: str) -> dict[str, Any]:
    """Counts as terraform prints them (a replacement is one add and one destroy)."""
    add = change = destroy = replace = 0
    resources = []
    for rc in plan.get("resource_changes", []):
        actions = rc.get("change", {}).get("actions", [])
        if actions in (["no-op"], ["read"]):
            continue
        resources.append({"address": rc["address"], "actions": actions})
        add += "create" in actions
        destroy += "delete" in actions
        change += actions == ["update"]
        replace += "create" in actions and "delete" in actions
    dbs = database_changes(plan)
    message = f"{env} {scope}: {add} to add, {change} to change, {destroy} to destroy"
    if dbs:
        message += (
            f"; DESTROYS OR REPLACES {len(dbs)} database resource(s): "
            + ", ".join(d["address"] for d in dbs)
            + " (needs a second approval)"
        )
    return {
        "environment": env,
        "scope": scope,
        "plan_sha256": plan_sha,
        "changes": bool(resources) or _outputs_change(plan),
        "add": add,
        "change": change,
        "destroy": destroy,
        "replace": replace,
        "database_changes": dbs,
        "needs_database_approval": bool(dbs),
        "resources": resources,
        "message": message,
        "planned_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _outputs_change(plan: dict[str, Any]) -> bool:
    return any(
        oc.get("actions") not in (["no-op"], None)
        for oc in (plan.get("output_changes") or {}).values()
    )


# -- where things are ----------------------------------------------------------------------


class Stage0:
    def __init__(self, env: str, tf_dir: Path, state_dir: Path) -> None:
        self.env = env
        self.root = tf_dir / "envs" / env
        if not (self.root / "main.tf").is_file():
            raise Refused(f"no environment {env!r}: {self.root}/main.tf does not exist")
        self.dir = state_dir / env
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self.tf = Terraform(self.root)
        except FileNotFoundError as exc:
            raise Unavailable(str(exc)) from exc
        self.plan_file = self.dir / "last.tfplan"
        self.summary_file = self.dir / "summary.json"

    # backend + variables

    def backend_config(self) -> list[str]:
        region = os.environ.get("TF_STATE_REGION") or os.environ.get("AWS_REGION") or "eu-west-1"
        bucket = os.environ.get("TF_STATE_BUCKET") or derived_state_bucket(region)
        config = [f"{self.env}.s3.tfbackend", f"bucket={bucket}", f"region={region}"]
        # Extra settings, e.g. the endpoints of an AWS API emulator in the tests.
        extra = os.environ.get("TF_BACKEND_CONFIG_EXTRA")
        return [*config, extra] if extra else config

    def init(self) -> None:
        self.tf.init(self.backend_config())

    def var_args(self, retire_mongodb: bool) -> list[str]:
        args = []
        var_file = os.environ.get("TF_VAR_FILE")
        if var_file:
            args.append(f"-var-file={Path(var_file).resolve()}")
        if retire_mongodb:
            args.append("-var=retire_mongodb=true")
        return args

    # steps

    def plan(self, scope: str) -> dict[str, Any]:
        self.init()
        current = self.tf.outputs()
        retired = bool(current.get("mongodb_retired"))
        if needs_archive(scope, current):
            require_archive(current)
        destroy = scope == "all"
        # Once torn down, MongoDB stays retired: the state remembers it (output mongodb_retired).
        args = self.var_args(retire_mongodb=retired or scope == "teardown")
        self.plan_file.unlink(missing_ok=True)
        self.tf.plan(self.plan_file, args, destroy=destroy)
        plan_json = self.tf.show_plan(self.plan_file)
        summary = summarise(plan_json, sha256_file(self.plan_file), self.env, scope)
        self._archive(summary, self.tf.show_plan_text(self.plan_file))
        return summary

    def _archive(self, summary: dict[str, Any], text: str) -> None:
        """Keep every plan with its summary and text: Jenkins archives the folder too."""
        self.summary_file.write_text(json.dumps(summary, indent=2) + "\n")
        (self.dir / "plan.txt").write_text(text)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        archive = self.dir / "plans" / f"{stamp}-{summary['scope']}-{summary['plan_sha256'][:12]}"
        archive.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.plan_file, archive / "plan.tfplan")
        shutil.copy2(self.summary_file, archive / "summary.json")
        (archive / "plan.txt").write_text(text)

    def apply(self, approved: str | None, approved_db: str | None) -> dict[str, Any]:
        if not self.plan_file.is_file() or not self.summary_file.is_file():
            raise Refused(f"no plan in {self.dir}: run the plan step first (STEP=plan)")
        summary = json.loads(self.summary_file.read_text())
        sha = sha256_file(self.plan_file)
        if sha != summary["plan_sha256"]:
            raise Refused(f"{self.plan_file} changed since it was summarised: plan again")
        if summary["changes"] and approved != sha:
            raise Refused(
                f"plan {sha} is not approved (APPROVED_PLAN={approved or '<unset>'}); "
                f"{summary['message']}"
            )
        # The plan may come from another workspace (Jenkins stashes it between stages).
        self.init()
        if not summary["changes"]:
            print(f"{self.env}: the plan changes nothing; nothing to apply")
            return self.handover()
        # Judged again from the plan file itself, not from the summary on disk.
        dbs = database_changes(self.tf.show_plan(self.plan_file))
        if dbs and approved_db != sha:
            raise Refused(
                "the plan destroys or replaces database resources: "
                + ", ".join(d["address"] for d in dbs)
                + f"; a second approval is needed: APPROVED_DB_CHANGES={sha}"
            )
        if needs_archive(summary["scope"], self.tf.outputs()):
            require_archive(self.tf.outputs())
        self.tf.apply(self.plan_file)
        self.plan_file.unlink()
        return self.handover()

    def handover(self) -> dict[str, Any]:
        """Terraform's outputs for the next stages: outputs.json and handover.env (read by
        inventories/aws through the variables it names and by mk/infra.mk)."""
        outputs = self.tf.outputs()
        (self.dir / "outputs.json").write_text(json.dumps(outputs, indent=2) + "\n")
        env = handover_env(outputs)
        (self.dir / "handover.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        return {"outputs": outputs, "handover": env}


def handover_env(outputs: dict[str, Any]) -> dict[str, str]:
    if not outputs:
        return {}
    cidr = outputs["vpc_cidr"]
    octets = cidr.split("/")[0].split(".")
    return {
        "LAZYSHIFT_ENV": outputs["environment"],
        "AWS_REGION": outputs["region"],
        "AWS_DEFAULT_REGION": outputs["region"],
        "LAZYSHIFT_VPC_CIDR": cidr,
        # MySQL account host pattern for a /16 VPC (the default of every env).
        "LAZYSHIFT_MYSQL_HOST_PATTERN": f"{octets[0]}.{octets[1]}.%",
        "LAZYSHIFT_ARCHIVE_BUCKET": outputs["archive_bucket"],
        "LAZYSHIFT_BASTION_IP": outputs.get("bastion_public_ip") or "",
        "LAZYSHIFT_MONGODB_RETIRED": "true" if outputs.get("mongodb_retired") else "false",
    }


# -- AWS -----------------------------------------------------------------------------------


def derived_state_bucket(region: str) -> str:
    """terraform/bootstrap's bucket name: <project>-tfstate-<account>-<region>."""
    import boto3
    import botocore.exceptions

    try:
        account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise Unavailable(f"cannot name the state bucket (set TF_STATE_BUCKET): {exc}") from exc
    return f"{os.environ.get('LAZYSHIFT_PROJECT', 'lazyshift')}-tfstate-{account}-{region}"


def needs_archive(scope: str, outputs: dict[str, Any]) -> bool:
    """Removing MongoDB waits for its archive; once it is gone there is nothing to wait for."""
    return scope == "teardown" or (scope == "all" and bool(outputs.get("mongodb_host")))


def require_archive(outputs: dict[str, Any]) -> dict[str, Any]:
    """The stage 5 archive is recorded: manifest and data file in the archive bucket."""
    import boto3
    import botocore.exceptions

    bucket = outputs.get("archive_bucket")
    if not bucket:
        raise Refused("no archive bucket in the state: nothing was provisioned yet")
    prefix = os.environ.get("LAZYSHIFT_ARCHIVE_PREFIX", "mongodb").strip("/")
    s3 = boto3.client("s3", region_name=outputs.get("region"))
    where = f"s3://{bucket}/{prefix}"
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read()
        manifest = json.loads(body)
        if manifest.get("format") != ARCHIVE_FORMAT:
            raise Refused(f"{where}/manifest.json is not a lazyshift archive manifest")
        head = s3.head_object(Bucket=bucket, Key=f"{prefix}/{manifest['data_file']}")
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise Refused(
                f"the MongoDB archive is not recorded in {where} (stage 5 archives it): "
                "MongoDB stays"
            ) from exc
        raise Unavailable(f"{where}: {exc}") from exc
    except (botocore.exceptions.BotoCoreError, ValueError, KeyError) as exc:
        raise Unavailable(f"{where}: {exc}") from exc
    if head["ContentLength"] != manifest.get("gz_bytes"):
        raise Refused(f"{where}: the data file's size differs from the manifest's")
    return manifest


# -- the command line ----------------------------------------------------------------------


def _confirm(prompt: str, expected: str) -> bool:
    try:
        return input(f"{prompt}\nType {expected!r} to go on: ").strip() == expected
    except EOFError:
        return False


def run_interactive(stage: Stage0, scope: str) -> dict[str, Any]:
    summary = stage.plan(scope)
    print(summary["message"])
    if not summary["changes"]:
        return stage.apply(None, None)
    sha = summary["plan_sha256"]
    if not sys.stdin.isatty():
        raise Refused(
            f"{summary['message']}\nNo terminal to ask for approval. Review "
            f"{stage.dir}/plan.txt, then STEP=apply APPROVED_PLAN={sha}"
            + (f" APPROVED_DB_CHANGES={sha}" if summary["needs_database_approval"] else "")
        )
    if not _confirm(f"Apply this plan to {stage.env}?", stage.env):
        raise Refused("not approved")
    approved_db = None
    if summary["needs_database_approval"]:
        if not _confirm("This plan destroys database data.", f"destroy {stage.env} databases"):
            raise Refused("database changes not approved")
        approved_db = sha
    return stage.apply(sha, approved_db)


def bootstrap(tf_dir: Path, region: str) -> None:
    """Create the state bucket; refuses a plan that would change or destroy anything."""
    tf = Terraform(tf_dir / "bootstrap")
    tf.init()
    plan_file = tf_dir / "bootstrap" / "bootstrap.tfplan"
    args = [f"-var=region={region}"]
    extra = os.environ.get("TF_VAR_FILE")
    if extra:
        args.append(f"-var-file={Path(extra).resolve()}")
    if not tf.plan(plan_file, args):
        print("state bucket already in place")
        return
    summary = summarise(tf.show_plan(plan_file), sha256_file(plan_file), "account", "bootstrap")
    if summary["destroy"] or summary["change"]:
        raise Refused(f"bootstrap only creates; this plan does more: {summary['message']}")
    tf.apply(plan_file)
    plan_file.unlink()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="stage0.py", description=__doc__.split("\n")[0])
    p.add_argument("--tf-dir", type=Path, default=Path("terraform"), help="terraform/ tree")
    p.add_argument("--state-dir", type=Path, default=Path(".state/infra"), help="artefacts")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("plan", "apply", "run", "handover"):
        s = sub.add_parser(name)
        s.add_argument("--env", required=True, help="terraform/envs/<env>")
        if name in ("plan", "run"):
            s.add_argument("--scope", choices=SCOPES, default="stage0")
        if name == "apply":
            s.add_argument("--approved", default=None, help="sha256 of the approved plan")
            s.add_argument("--approved-db", default=None, help="sha256, second approval")
    b = sub.add_parser("bootstrap")
    b.add_argument("--region", required=True)
    return p.parse_args(argv)


def dispatch(args: argparse.Namespace) -> Any:
    if args.command == "bootstrap":
        return bootstrap(args.tf_dir, args.region)
    stage = Stage0(args.env, args.tf_dir, args.state_dir)
    if args.command == "plan":
        return stage.plan(args.scope)
    if args.command == "apply":
        return stage.apply(args.approved or None, args.approved_db or None)
    if args.command == "run":
        return run_interactive(stage, args.scope)
    stage.init()
    return stage.handover()


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        result = dispatch(args)
    except Refused as exc:
        print(f"stage0: refused: {exc}", file=sys.stderr)
        return 1
    except (Unavailable, TerraformError) as exc:
        print(f"stage0: {exc}", file=sys.stderr)
        return 3
    if isinstance(result, dict) and "message" in result:
        print(result["message"])
        print(f"plan sha256: {result['plan_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
