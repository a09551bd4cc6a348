"""Small output helpers shared by the click commands."""

from __future__ import annotations

import click


def echo_failures(failures, limit: int = 20) -> None:
    """List ``[(path, reason)]`` of images left out on stderr: the first ``limit``, then how many more."""
    if not failures:
        return
    click.echo(f"{len(failures)} image(s) left out:", err=True)
    for path, reason in failures[:limit]:
        click.echo(f"  {path}: {reason}", err=True)
    if len(failures) > limit:
        click.echo(f"  ... and {len(failures) - limit} more", err=True)
