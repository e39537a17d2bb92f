"""`lazyshift infra render`: Terraform outputs -> lazyshift config and Ansible inventory."""

from __future__ import annotations

import sys

import click


@click.group()
def infra() -> None:
    """Glue between Terraform and the rest: configuration rendered from outputs."""


@infra.command("render", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def infra_render(args: tuple[str, ...]) -> None:
    """Render the lazyshift config and Ansible inventory from `terraform output -json`.

    ARGS go to the renderer: [OUTPUTS_FILE|-] [--config-out F] [--inventory-out F]
    (`lazyshift infra render --help` for its own help).
    """
    from lazyshift.infra_config import main as render_main

    sys.exit(render_main(list(args)))


COMMANDS = [infra]
