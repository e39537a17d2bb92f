"""A thin wrapper over the terraform CLI: run it, read its JSON.

Only what stage 0 needs, each call one terraform command: `init` (with the committed lock
file, read-only), `plan -out` (`-detailed-exitcode` says whether anything changes),
`show -json PLAN` (the machine-readable plan), `apply PLAN` (exactly that file) and
`output -json`. Nothing parses terraform's human output.

Why not python-terraform: its last release is 0.10.1 (2019); it predates `-json` output,
the plan file format and Terraform >= 1.0, and it guesses arguments from Python keyword
names. A hundred lines over subprocess stay correct as terraform evolves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TerraformError(RuntimeError):
    """terraform exited with an unexpected code; the message carries its stderr."""

    def __init__(self, args: list[str], code: int, stderr: str) -> None:
        super().__init__(f"terraform {' '.join(args)} exited {code}:\n{stderr.strip()[-4000:]}")
        self.code = code


@dataclass
class Terraform:
    """terraform run in one root module (`-chdir`), with the caller's environment."""

    workdir: Path
    binary: str = field(default_factory=lambda: os.environ.get("TERRAFORM", "terraform"))
    env: Mapping[str, str] | None = None
    echo: bool = True

    def __post_init__(self) -> None:
        if shutil.which(self.binary) is None:
            raise FileNotFoundError(f"terraform not found ({self.binary}); install >= 1.10")

    def run(
        self, *args: str, ok: Iterable[int] = (0,), capture: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run `terraform -chdir=WORKDIR ARGS`; stdout goes to the terminal unless captured."""
        argv = [self.binary, f"-chdir={self.workdir}", *args]
        env = {**os.environ, **(self.env or {}), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
        proc = subprocess.run(
            argv,
            env=env,
            text=True,
            stdout=subprocess.PIPE if capture or not self.echo else None,
            stderr=subprocess.PIPE,
        )
        if proc.returncode not in tuple(ok):
            raise TerraformError(list(args), proc.returncode, proc.stderr or "")
        if proc.stderr and self.echo:
            print(proc.stderr, end="")
        return proc

    def init(self, backend_config: Iterable[str] = ()) -> None:
        """`init` with the committed lock file as it is (a missing hash fails, never rewrites)."""
        self.run(
            "init",
            "-input=false",
            "-no-color",
            "-reconfigure",
            "-lockfile=readonly",
            *(f"-backend-config={c}" for c in backend_config),
        )

    def plan(self, out: Path, args: Iterable[str] = (), destroy: bool = False) -> bool:
        """`plan -out=OUT`; True when the plan changes something."""
        proc = self.run(
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            f"-out={out}",
            *(["-destroy"] if destroy else []),
            *args,
            ok=(0, 2),
        )
        return proc.returncode == 2

    def show_plan(self, plan: Path) -> dict[str, Any]:
        return json.loads(self.run("show", "-json", str(plan), capture=True).stdout)

    def show_plan_text(self, plan: Path) -> str:
        return self.run("show", "-no-color", str(plan), capture=True).stdout

    def apply(self, plan: Path) -> None:
        """Apply exactly this saved plan (terraform refuses a stale one)."""
        self.run("apply", "-input=false", "-no-color", str(plan))

    def outputs(self) -> dict[str, Any]:
        """`output -json` as {name: value}; {} when the state has no outputs yet."""
        raw = json.loads(self.run("output", "-json", capture=True).stdout or "{}")
        return {name: item["value"] for name, item in raw.items()}
