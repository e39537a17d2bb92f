"""Fixtures for the Terraform tests (terraform environment, scratch copy, moto's server);
helpers live in tfhelpers.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tfhelpers import DEFAULT_PLUGIN_MIRROR, ROOT_MODULES, copy_terraform_tree, run, terraform_bin


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory) -> dict[str, str]:
    """Environment for terraform: offline provider installation from the mirror."""
    mirror = os.environ.get("TF_PLUGIN_MIRROR", DEFAULT_PLUGIN_MIRROR)
    if not (Path(mirror) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.fail(
            f"no hashicorp/aws provider under the plugin mirror {mirror} "
            "(set TF_PLUGIN_MIRROR to a filesystem mirror)"
        )
    cfg_dir = tmp_path_factory.mktemp("tfcli")
    cli_config = cfg_dir / "terraform.rc"
    cli_config.write_text(
        f"provider_installation {{\n  filesystem_mirror {{\n    path    = {mirror!r}\n".replace(
            "'", '"'
        )
        + '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_VAR_", "AWS_"))}
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }
    )
    env.pop("TF_DATA_DIR", None)
    env.pop("TF_WORKSPACE", None)
    return env


@pytest.fixture(scope="session")
def tf_copy(tmp_path_factory, tf_env) -> Path:
    """A scratch copy of terraform/ with every root module initialised (-backend=false)."""
    tf = terraform_bin()
    root = copy_terraform_tree(tmp_path_factory.mktemp("tfcopy"))
    for module in ROOT_MODULES:
        # readonly: the committed .terraform.lock.hcl must already hold this provider's hashes.
        run(
            [tf, "init", "-backend=false", "-lockfile=readonly", "-input=false", "-no-color"],
            root / module,
            tf_env,
        )
    return root


MOTO_SERVER = Path(sys.executable).with_name("moto_server")


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
