"""The `perpsim` command line."""

from __future__ import annotations

import sys

import click

from simulator import __version__, toolchain
from simulator.errors import PerpsimError


@click.group()
@click.version_option(__version__, prog_name="perpsim")
def cli() -> None:
    """Stress-test perpetual-futures exchanges against real contracts on anvil."""


@cli.command()
def doctor() -> None:
    """Check the offline toolchain: compiler stand-in and anvil wrapper."""
    click.echo(f"compiler: {toolchain.check_compiler()}")
    click.echo(f"anvil:    {toolchain.check_anvil()}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PerpsimError as exc:
        click.echo(f"perpsim: {exc.user_message}", err=True)
        sys.exit(1)
