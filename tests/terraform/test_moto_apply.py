"""Plan, apply, re-plan (no changes) and destroy envs/dev against moto's server on loopback.

The provider reaches moto through an override file that this test writes into a scratch
copy of terraform/ (never into the repository). The override also swaps the S3 backend
for a local one and sets `api_emulator = true`, which leaves out the few settings moto
does not implement (see envs/dev/variables.tf).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from tfhelpers import REPO, copy_terraform_tree, run, terraform_bin

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto(tmp_path):
    if not MOTO_SERVER.exists():
        pytest.fail(
            f"moto_server not found at {MOTO_SERVER}: install moto[server] (make deps-python)"
        )
    port = _free_port()
    log = open(tmp_path / "moto.log", "w")  # noqa: SIM115 - closed in the finally below
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")  # AmazonSSMManagedInstanceCore
    proc = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited early ({proc.returncode}); see {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not answer within 60 s")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _client(service: str, url: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


OVERRIDE = """\
# Written by tests/terraform/test_moto_apply.py into a scratch copy. Never commit.
terraform {{
  backend "local" {{
    path = "{state}"
  }}
}}

provider "aws" {{
  region                      = "{region}"
  access_key                  = "testing"
  secret_key                  = "testing"
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


def _load_renderer():
    spec = importlib.util.spec_from_file_location(
        "lazyshift_infra_config", REPO / "tools/lazyshift/infra_config.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_dev_plan_apply_replan_destroy_against_moto(moto, tmp_path, tf_env):
    tf = terraform_bin()
    root = copy_terraform_tree(tmp_path)
    env_dir = root / "envs/dev"
    (env_dir / "moto_override.tf").write_text(
        OVERRIDE.format(state=tmp_path / "dev.tfstate", region=REGION, url=moto)
    )

    # moto ships a fixed AMI catalogue: pick its newest Canonical Ubuntu server image.
    images = _client("ec2", moto).describe_images(
        Owners=["099720109477"],
        Filters=[{"Name": "name", "Values": ["ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*"]}],
    )["Images"]
    assert images, "moto offers no Canonical Ubuntu image"
    ami = max(images, key=lambda i: i["CreationDate"])["ImageId"]
    varfile = tmp_path / "moto.tfvars.json"
    varfile.write_text(
        json.dumps(
            {
                "admin_cidrs": ["203.0.113.0/24"],
                "ami_id": ami,
                "api_emulator": True,
            }
        )
    )
    common = ["-input=false", "-no-color", f"-var-file={varfile}"]

    run([tf, "init", "-input=false", "-no-color"], env_dir, tf_env)
    plan = run([tf, "plan", *common, "-out=dev.tfplan"], env_dir, tf_env)
    assert "0 to change, 0 to destroy" in plan.stdout

    applied = False
    try:
        run([tf, "apply", "-input=false", "-no-color", "dev.tfplan"], env_dir, tf_env)
        applied = True

        replan = run([tf, "plan", *common, "-detailed-exitcode"], env_dir, tf_env, ok=(0, 2))
        assert replan.returncode == 0, "re-plan after apply is not empty:\n" + replan.stdout[-6000:]

        outputs = json.loads(run([tf, "output", "-json"], env_dir, tf_env).stdout)
        (tmp_path / "dev-outputs.json").write_text(json.dumps(outputs, indent=2))
        _check_live_environment(moto, outputs)

        rendered = _load_renderer().render(outputs)
        cfg = rendered["config"]
        assert cfg["environment"] == "dev"
        assert cfg["mysql"] == {
            "host": outputs["mysql_host"]["value"],
            "port": 3306,
            "database": "lazyshift",
        }
        assert cfg["mongo"]["uri"] == f"mongodb://{outputs['mongodb_host']['value']}:27017/"
        assert cfg["archive"]["s3_bucket"] == outputs["archive_bucket"]["value"]
        groups = rendered["inventory"]["all"]["children"]
        assert sorted(groups) == ["bastion", "client", "mongodb", "mysql", "source", "tools"]
    finally:
        if applied:
            run([tf, "destroy", "-auto-approve", *common], env_dir, tf_env)

    ec2 = _client("ec2", moto)
    live = [
        i
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    assert not live, "instances left after destroy"
    assert not _client("s3", moto).list_buckets()["Buckets"], "bucket left after destroy"


def _check_live_environment(url: str, outputs: dict) -> None:
    """What moto holds after the apply matches the security rules."""
    ec2 = _client("ec2", url)
    instances = [
        i
        for r in ec2.describe_instances(
            Filters=[
                {"Name": "tag:Project", "Values": ["lazyshift"]},
                {"Name": "tag:Environment", "Values": ["dev"]},
            ]
        )["Reservations"]
        for i in r["Instances"]
    ]
    roles = sorted(next(t["Value"] for t in i["Tags"] if t["Key"] == "Role") for i in instances)
    assert roles == ["bastion", "client", "mongodb", "mysql", "source", "tools"]

    for inst in instances:
        role = next(t["Value"] for t in inst["Tags"] if t["Key"] == "Role")
        if role in ("mongodb", "mysql"):
            assert not inst.get("PublicIpAddress"), f"{role} host has a public IP"
            assert len(inst["BlockDeviceMappings"]) == 2, f"{role} host lacks its data volume"
        assert inst.get("IamInstanceProfile"), f"{role} host has no instance profile"

    volumes = ec2.describe_volumes()["Volumes"]
    assert volumes and all(v["Encrypted"] and v["VolumeType"] == "gp3" for v in volumes)

    sg_ids = outputs["security_group_ids"]["value"]
    for group in ec2.describe_security_groups(GroupIds=[sg_ids["mongodb"], sg_ids["mysql"]])[
        "SecurityGroups"
    ]:
        for perm in group["IpPermissions"]:
            assert not perm.get("IpRanges"), f"{group['GroupName']} has CIDR ingress {perm}"

    s3 = _client("s3", url)
    bucket = outputs["archive_bucket"]["value"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(pab.values())
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"

    iam = _client("iam", url)
    tools_role = "lazyshift-dev-tools-1"
    policies = iam.list_role_policies(RoleName=tools_role)["PolicyNames"]
    assert policies == ["tools-access"]
    for other in ("lazyshift-dev-mysql-1", "lazyshift-dev-client-1"):
        assert iam.list_role_policies(RoleName=other)["PolicyNames"] == []
