"""``sdeploy doctor``."""

from __future__ import annotations

import click

from ..backends import app_names, runtime_names, target_names
from ..doctor import check_report, doctor
from ..tables import format_table
from .common import echo_json, main


@main.command("doctor")
@click.option("--target", "targets", multiple=True, type=click.Choice(target_names()),
              help="Export targets you need (repeatable); the exit code is 0 only if they are usable.")
@click.option("--runtime", "runtimes", multiple=True, type=click.Choice(runtime_names()),
              help="Runtimes you need (repeatable).")
@click.option("--app", "apps", multiple=True, type=click.Choice(app_names()),
              help="Demo apps whose toolchain you need (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_command(targets, runtimes, apps, as_json) -> None:
    """What this machine can export, run and build, with versions and what to install for the rest.

    Exit code 0 when everything asked about with --target, --runtime and --app is usable.
    """
    report = doctor(list(targets), list(runtimes), list(apps))
    if as_json:
        echo_json(report.to_dict())
    else:
        rows = [(c.kind, c.name, "yes" if c.usable else "NO", c.version or "-", c.install or "") for c in report.checks]
        lines = [format_table(("kind", "name", "usable", "version", "to install"), rows)]
        lines += [f"note ({c.kind} {c.name}): {note}" for c in report.checks for note in c.notes]
        click.echo("\n".join(lines))
    check_report(report)
