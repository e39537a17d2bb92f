"""Render an environment's lazyshift configuration and Ansible inventory from Terraform.

Input is what ``terraform -chdir=terraform/envs/<env> output -json`` prints (a file or
stdin); output is JSON: the lazyshift config and an Ansible YAML inventory (JSON is YAML,
so ``ansible-inventory -i inventory.json`` reads it). Outputs carry no secrets and neither
does anything rendered here: credentials come from vault or the environment.

Standalone on purpose (standard library only, no other lazyshift import) so the pipeline
can run it before anything is installed; the CLI wraps it as ``lazyshift infra render``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

MYSQL_PORT = 3306
MONGO_PORT = 27017
SOURCE_PORT = 8282
MYSQL_DATABASE = "lazyshift"
SSH_USER = "ubuntu"  # the Ubuntu LTS AMIs' default user

# Outputs of terraform/envs/* that the renderer needs.
REQUIRED_OUTPUTS = ("environment", "hosts", "mysql_host", "archive_bucket")


class OutputsError(ValueError):
    """The Terraform outputs lack what the renderer needs."""


def _values(outputs: dict[str, Any]) -> dict[str, Any]:
    """Unwrap ``terraform output -json`` ({name: {"value": ..., "type": ...}}) to values."""
    if not isinstance(outputs, dict):
        raise OutputsError("terraform outputs must be a JSON object")
    values = {}
    for name, out in outputs.items():
        if isinstance(out, dict) and "value" in out:
            if out.get("sensitive"):
                raise OutputsError(f"output {name!r} is sensitive; the renderer takes no secrets")
            values[name] = out["value"]
        else:
            values[name] = out
    missing = [n for n in REQUIRED_OUTPUTS if values.get(n) in (None, "")]
    if missing:
        raise OutputsError(f"terraform outputs lack {', '.join(missing)} (is the state applied?)")
    return values


def _config(v: dict[str, Any]) -> dict[str, Any]:
    mongo_host = v.get("mongodb_host")
    source_host = v.get("source_host")
    return {
        "environment": v["environment"],
        "mysql": {"host": v["mysql_host"], "port": MYSQL_PORT, "database": MYSQL_DATABASE},
        # Stage 5 removes MongoDB: no host, no URI.
        "mongo": {"uri": f"mongodb://{mongo_host}:{MONGO_PORT}/" if mongo_host else None},
        "source": {"host": source_host, "port": SOURCE_PORT},
        "archive": {"s3_bucket": v["archive_bucket"]},
    }


def _inventory(v: dict[str, Any]) -> dict[str, Any]:
    hosts: dict[str, dict[str, Any]] = v["hosts"]
    bastion_ip = v.get("bastion_public_ip")
    children: dict[str, Any] = {}
    for name in sorted(hosts):
        h = hosts[name]
        role = h["role"]
        address = h.get("public_ip") if role == "bastion" else h.get("private_ip")
        group = children.setdefault(role, {"hosts": {}})
        group["hosts"][name] = {
            "ansible_host": address,
            "private_ip": h.get("private_ip"),
            "instance_id": h.get("id"),
            "availability_zone": h.get("availability_zone"),
        }
        if role != "bastion" and bastion_ip:
            # Private hosts are reached through the bastion (the only SSH entry point).
            group["vars"] = {
                "ansible_ssh_common_args": f"-o ProxyJump={SSH_USER}@{bastion_ip}",
            }
    return {
        "all": {
            "vars": {
                "ansible_user": SSH_USER,
                "lazyshift_environment": v["environment"],
                "lazyshift_archive_bucket": v["archive_bucket"],
            },
            "children": children,
        }
    }


def render(outputs: dict[str, Any]) -> dict[str, Any]:
    """Terraform outputs (raw ``output -json`` or plain values) -> {"config", "inventory"}."""
    v = _values(outputs)
    return {"config": _config(v), "inventory": _inventory(v)}


def _write(path: str, doc: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.write("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lazyshift infra render",
        description="Render the lazyshift config and Ansible inventory "
        "from `terraform output -json`.",
    )
    parser.add_argument(
        "outputs",
        nargs="?",
        default="-",
        help="file holding `terraform output -json` ('-' or none: stdin)",
    )
    parser.add_argument("--config-out", help="write the lazyshift config (JSON) here")
    parser.add_argument("--inventory-out", help="write the Ansible inventory (JSON/YAML) here")
    args = parser.parse_args(argv)

    try:
        if args.outputs == "-":
            raw = sys.stdin.read()
        else:
            with open(args.outputs, encoding="utf-8") as fh:
                raw = fh.read()
        rendered = render(json.loads(raw))
    except (OSError, json.JSONDecodeError, OutputsError, KeyError, TypeError) as exc:
        print(f"lazyshift infra render: {exc}", file=sys.stderr)
        return 2

    if args.config_out:
        _write(args.config_out, rendered["config"])
    if args.inventory_out:
        _write(args.inventory_out, rendered["inventory"])
    if not (args.config_out or args.inventory_out):
        json.dump(rendered, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
