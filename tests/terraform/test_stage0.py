"""Stage 0 through the make targets the Jenkinsfile calls, against moto's server.

`make state-bootstrap`, then `make stage0 ENV=dev STEP=plan|apply` (plan, apply exactly the
approved plan, re-plan: no changes), `make teardown ENV=dev` (refused before the archive,
refused without the second approval, then the MongoDB host and volume go), and
`make teardown ENV=dev SCOPE=all` (destroy). envs/dev's state lives in the state bucket in
moto, locked with use_lockfile. A scratch copy of terraform/ gets the provider's endpoints
(`moto_override.tf`, never written into the repository).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from tfhelpers import REPO, copy_terraform_tree

sys.path.insert(0, str(REPO / "tools" / "infra"))
import stage0  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
STATE_BUCKET = f"lazyshift-tfstate-{ACCOUNT}-{REGION}"

PROVIDER_OVERRIDE = """\
# Written by tests/terraform/test_stage0.py into a scratch copy. Never commit.
provider "aws" {{
  region                      = "{region}"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  max_retries                 = 1

  endpoints {{
    ec2  = "{url}"
    iam  = "{url}"
    kms  = "{url}"
    logs = "{url}"
    s3   = "{url}"
    sts  = "{url}"
  }}
}}
"""

BACKEND_EXTRA = """\
endpoints                   = {{ s3 = "{url}", sts = "{url}", iam = "{url}" }}
use_path_style              = true
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
"""


# -- the rules, on plan documents shaped like `terraform show -json` -----------------------


def _rc(address: str, rtype: str, actions: list[str], role: str | None) -> dict:
    before = None if actions == ["create"] else {"tags": {"Role": role} if role else {}}
    return {"address": address, "type": rtype, "change": {"actions": actions, "before": before}}


def test_summary_counts_like_terraform_and_flags_database_destruction():
    plan = {
        "resource_changes": [
            _rc(
                'module.stack.module.host["mysql-1"].aws_instance.this',
                "aws_instance",
                ["delete", "create"],
                "mysql",
            ),
            _rc(
                'module.stack.module.host["mongodb-1"].aws_ebs_volume.data[0]',
                "aws_ebs_volume",
                ["delete"],
                "mongodb",
            ),
            _rc(
                'module.stack.module.host["client-1"].aws_instance.this',
                "aws_instance",
                ["delete"],
                "client",
            ),
            _rc(
                'module.stack.module.host["mysql-1"].aws_instance.this',
                "aws_instance",
                ["update"],
                "mysql",
            ),
            _rc("module.stack.aws_kms_key.this", "aws_kms_key", ["create"], None),
            _rc("module.stack.data.aws_ami.this", "aws_ami", ["read"], None),
        ]
    }
    s = stage0.summarise(plan, "ab" * 32, "dev", "stage0")
    assert (s["add"], s["change"], s["destroy"], s["replace"]) == (2, 1, 3, 1)
    assert [d["role"] for d in s["database_changes"]] == ["mysql", "mongodb"]
    assert s["needs_database_approval"] and "second approval" in s["message"]
    assert s["message"].startswith("dev stage0: 2 to add, 1 to change, 3 to destroy")


def test_updates_and_other_roles_need_no_second_approval():
    plan = {
        "resource_changes": [
            _rc("a", "aws_instance", ["update"], "mysql"),
            _rc("b", "aws_instance", ["delete"], "tools"),
            _rc("c", "aws_volume_attachment", ["delete", "create"], "mysql"),
        ]
    }
    assert stage0.database_changes(plan) == []
    assert not stage0.summarise(plan, "0" * 64, "dev", "stage0")["needs_database_approval"]


def test_handover_env_from_outputs():
    env = stage0.handover_env(
        {
            "environment": "prod",
            "region": "eu-central-1",
            "vpc_cidr": "10.41.0.0/16",
            "archive_bucket": "lazyshift-prod-archive",
            "bastion_public_ip": "198.51.100.7",
            "mongodb_retired": False,
        }
    )
    assert env["LAZYSHIFT_ENV"] == "prod" and env["AWS_REGION"] == "eu-central-1"
    assert env["LAZYSHIFT_MYSQL_HOST_PATTERN"] == "10.41.%"
    assert env["LAZYSHIFT_MONGODB_RETIRED"] == "false"


def test_make_targets_refuse_bad_usage():
    for argv in (
        ["stage0"],
        ["stage0", "ENV=nope"],
        ["stage0", "ENV=dev", "STEP=go"],
        ["teardown", "ENV=dev", "SCOPE=mysql"],
    ):
        proc = subprocess.run(
            ["make", "-s", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)


class _RecordingTerraform:
    """Stands in for tfcli.Terraform where only stage0.py's own rules are under test."""

    def __init__(self, plan: dict) -> None:
        self.plan, self.applied = plan, []

    def init(self, backend_config=()) -> None:
        pass

    def show_plan(self, plan_file: Path) -> dict:
        return self.plan

    def apply(self, plan_file: Path) -> None:
        self.applied.append(plan_file)

    def outputs(self) -> dict:
        return {}


def test_apply_refuses_database_destruction_without_the_second_approval(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_STATE_BUCKET", "state")
    (tmp_path / "terraform/envs/dev").mkdir(parents=True)
    (tmp_path / "terraform/envs/dev/main.tf").write_text("")
    stage = stage0.Stage0("dev", tmp_path / "terraform", tmp_path / "infra")
    plan = {"resource_changes": [_rc("x", "aws_ebs_volume", ["delete"], "mongodb")]}
    stage.tf = _RecordingTerraform(plan)
    stage.plan_file.write_bytes(b"a plan")
    sha = stage0.sha256_file(stage.plan_file)
    summary = stage0.summarise(plan, sha, "dev", "stage0")
    stage.summary_file.write_text(json.dumps(summary))

    with pytest.raises(stage0.Refused, match="not approved"):
        stage.apply(None, None)
    with pytest.raises(stage0.Refused, match="second approval"):
        stage.apply(sha, None)
    with pytest.raises(stage0.Refused, match="second approval"):
        stage.apply(sha, "f" * 64)
    assert stage.tf.applied == []
    # The summary on disk is not trusted: the plan file itself is judged again.
    stage.summary_file.write_text(json.dumps({**summary, "database_changes": []}))
    with pytest.raises(stage0.Refused, match="second approval"):
        stage.apply(sha, None)
    stage.apply(sha, sha)
    assert stage.tf.applied == [stage.plan_file]


def test_the_archive_is_required_while_mongodb_exists():
    assert stage0.needs_archive("teardown", {"mongodb_host": "10.40.3.4"})
    assert stage0.needs_archive("all", {"mongodb_host": "10.40.3.4"})
    assert not stage0.needs_archive("all", {"mongodb_host": None, "mongodb_retired": True})
    assert not stage0.needs_archive("stage0", {"mongodb_host": "10.40.3.4"})


# -- the whole path against moto -----------------------------------------------------------


class Make:
    def __init__(self, tf_tree: Path, infra_state: Path, env: dict[str, str]) -> None:
        self.vars = [f"TF_TREE={tf_tree}", f"INFRA_STATE={infra_state}"]
        self.env = env
        self.dir = infra_state / "dev"

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["make", "-s", *args, *self.vars],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        # make exits 2 whatever failed; the message says which rule refused.
        assert (proc.returncode == 0) == ok, (
            f"make {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
        return proc

    def summary(self) -> dict:
        return json.loads((self.dir / "summary.json").read_text())


def _client(service: str, url: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _instances(ec2) -> dict[str, dict]:
    return {
        next(t["Value"] for t in i["Tags"] if t["Key"] == "Name"): i
        for r in ec2.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"]
        for i in r["Instances"]
    }


@pytest.fixture
def make_env(moto, tmp_path, tf_env) -> Make:
    tree = copy_terraform_tree(tmp_path)
    for root in ("bootstrap", "envs/dev"):
        (tree / root / "moto_override.tf").write_text(
            PROVIDER_OVERRIDE.format(region=REGION, url=moto)
        )
    backend_extra = tmp_path / "moto.s3.tfbackend"
    backend_extra.write_text(BACKEND_EXTRA.format(url=moto))
    # moto's catalogue has no Debian image and cannot make one with an EBS root device (the
    # lookup's filter), so the test pins an image of that name; the lookup itself is covered
    # by modules/host/tests (mocked provider).
    ec2 = _client("ec2", moto)
    ubuntu = ec2.describe_images(
        Owners=["099720109477"],
        Filters=[{"Name": "name", "Values": ["ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*"]}],
    )["Images"][0]["ImageId"]
    seed = ec2.run_instances(ImageId=ubuntu, MinCount=1, MaxCount=1)["Instances"][0]
    debian = ec2.create_image(InstanceId=seed["InstanceId"], Name="debian-12-amd64-20250101")
    ec2.terminate_instances(InstanceIds=[seed["InstanceId"]])
    env = {
        **tf_env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": moto,  # boto3 in stage0.py: the state bucket's name, the archive
        "TF_STATE_REGION": REGION,
        "TF_BACKEND_CONFIG_EXTRA": str(backend_extra),
        "TF_VAR_api_emulator": "true",
        "TF_VAR_force_destroy": "true",
        "TF_VAR_admin_cidrs": '["203.0.113.0/24"]',
        "TF_VAR_ami_id": debian["ImageId"],
        "MAKEFLAGS": "",
    }
    return Make(tree, tmp_path / "infra", env)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_stage0_plan_apply_replan_teardown_destroy_through_make(make_env, moto):
    make = make_env
    ec2, s3 = _client("ec2", moto), _client("s3", moto)

    make("state-bootstrap", f"TF_STATE_REGION={REGION}")
    assert s3.get_bucket_versioning(Bucket=STATE_BUCKET)["Status"] == "Enabled"

    # Plan, then apply exactly that plan once approved by its sha256.
    make("stage0", "ENV=dev", "STEP=plan")
    plan = make.summary()
    assert plan["changes"] and plan["add"] > 40 and plan["destroy"] == 0
    assert not plan["needs_database_approval"]
    assert (make.dir / "plan.txt").read_text().count("will be created") == plan["add"]
    refused = make("stage0", "ENV=dev", "STEP=apply", "APPROVED_PLAN=" + "0" * 64, ok=False)
    assert "not approved" in refused.stderr
    assert not _instances(ec2)
    make("stage0", "ENV=dev", "STEP=apply", f"APPROVED_PLAN={plan['plan_sha256']}")

    hosts = _instances(ec2)
    assert sorted(hosts) == [
        f"lazyshift-dev-{r}-1" for r in ("bastion", "client", "mongodb", "mysql", "source", "tools")
    ]
    _check_live_environment(ec2, s3, hosts)
    state = s3.list_objects_v2(Bucket=STATE_BUCKET)["Contents"]
    assert [o["Key"] for o in state] == ["lazyshift/dev/terraform.tfstate"], "lock file left"
    handover = dict(ln.split("=", 1) for ln in (make.dir / "handover.env").read_text().splitlines())
    outputs = json.loads((make.dir / "outputs.json").read_text())
    assert handover["LAZYSHIFT_ENV"] == "dev" and handover["AWS_REGION"] == REGION
    assert handover["LAZYSHIFT_MYSQL_HOST_PATTERN"] == "10.40.%"
    assert handover["LAZYSHIFT_ARCHIVE_BUCKET"] == outputs["archive_bucket"]
    assert outputs["mysql_host"] == hosts["lazyshift-dev-mysql-1"]["PrivateIpAddress"]
    assert len(list((make.dir / "plans").iterdir())) == 1, "the applied plan is archived"

    make("stage0", "ENV=dev", "STEP=plan")
    assert not make.summary()["changes"], "re-plan after apply is not empty"
    make("stage0", "ENV=dev", "STEP=apply")  # no changes: only the hand-over

    # Teardown: MongoDB stays until the archive is recorded ...
    bucket = outputs["archive_bucket"]
    # moto ignores the conditions of the bucket policy's Deny statements (TLS, the tools
    # role) and would refuse every object request: the policy goes, the teardown apply
    # puts it back.
    s3.delete_bucket_policy(Bucket=bucket)
    refused = make("teardown", "ENV=dev", "STEP=plan", ok=False)
    assert "archive is not recorded" in refused.stderr
    s3.put_object(Bucket=bucket, Key="mongodb/shipments.jsonl.gz", Body=b"x" * 10)
    manifest = {
        "format": "lazyshift-archive/1",
        "data_file": "shipments.jsonl.gz",
        "count": 1,
        "gz_bytes": 10,
    }
    s3.put_object(Bucket=bucket, Key="mongodb/manifest.json", Body=json.dumps(manifest))
    make("teardown", "ENV=dev", "STEP=plan")
    plan = make.summary()
    assert plan["needs_database_approval"]
    assert sorted(d["address"] for d in plan["database_changes"]) == [
        'module.stack.module.host["mongodb-1"].aws_ebs_volume.data[0]',
        'module.stack.module.host["mongodb-1"].aws_instance.this',
    ]
    assert all(d["role"] == "mongodb" for d in plan["database_changes"])
    # ... and goes only with the second approval (the destroy-protection rule).
    sha = plan["plan_sha256"]
    refused = make("teardown", "ENV=dev", "STEP=apply", f"APPROVED_PLAN={sha}", ok=False)
    assert "second approval" in refused.stderr
    assert "lazyshift-dev-mongodb-1" in _instances(ec2)
    make("teardown", "ENV=dev", "STEP=apply", f"APPROVED_PLAN={sha}", f"APPROVED_DB_CHANGES={sha}")
    hosts = _instances(ec2)
    assert "lazyshift-dev-mongodb-1" not in hosts and "lazyshift-dev-mysql-1" in hosts
    tags = [
        {t["Key"]: t["Value"] for t in v.get("Tags", [])} for v in ec2.describe_volumes()["Volumes"]
    ]
    assert not [t for t in tags if t.get("Role") == "mongodb"], "MongoDB's volume is left"
    assert "LAZYSHIFT_MONGODB_RETIRED=true" in (make.dir / "handover.env").read_text()

    # Stage 0 again keeps MongoDB retired (the state says so).
    make("stage0", "ENV=dev", "STEP=plan")
    assert not make.summary()["changes"]

    # Destroy everything: the MySQL host goes too, so it needs both approvals.
    make("teardown", "ENV=dev", "SCOPE=all", "STEP=plan")
    plan = make.summary()
    assert plan["scope"] == "all" and plan["add"] == 0 and plan["needs_database_approval"]
    sha = plan["plan_sha256"]
    make(
        "teardown",
        "ENV=dev",
        "SCOPE=all",
        "STEP=apply",
        f"APPROVED_PLAN={sha}",
        f"APPROVED_DB_CHANGES={sha}",
    )
    assert not _instances(ec2), "instances left after destroy"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [STATE_BUCKET]


def _check_live_environment(ec2, s3, hosts: dict[str, dict]) -> None:
    """What moto holds after the apply matches the rules the inventory and roles rely on."""
    for name, inst in hosts.items():
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags["Project"] == "lazyshift" and tags["Environment"] == "dev", name
        assert name == f"lazyshift-dev-{tags['Role']}-1"
        if tags["Role"] in ("mongodb", "mysql"):
            assert not inst.get("PublicIpAddress"), f"{name} has a public IP"
            assert len(inst["BlockDeviceMappings"]) == 2, f"{name} lacks its data volume"
        assert inst.get("IamInstanceProfile"), f"{name} has no instance profile"
    volumes = ec2.describe_volumes()["Volumes"]
    live = [v for v in volumes if v["State"] != "deleted" and v.get("Tags")]
    assert live and all(v["Encrypted"] and v["VolumeType"] == "gp3" for v in live)
    data = [v for v in live if any(t["Key"] == "Snapshot" for t in v["Tags"])]
    assert len(data) == 2, "each database data volume wears the snapshot policy's tag"
    assert {t["Value"] for v in data for t in v["Tags"] if t["Key"] == "Snapshot"} == {
        "lazyshift-dev-data"
    }
