"""The ``sdeploy`` group and what every command shares: error handling, JSON output, weight options."""

from __future__ import annotations

import json

import click

from .. import __version__
from ..errors import SdeployError


class CliError(click.ClickException):
    """Printed by click as one ``Error: ...`` line on stderr, no traceback."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class SdeployGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SdeployError as exc:
            raise CliError(str(exc), exc.exit_code) from None


@click.group(cls=SdeployGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="sdeploy")
def main() -> None:
    """Export ShuffleNet V1/V2 classifiers to ONNX, TorchScript Mobile, Core ML and NCNN, and prove they are right."""


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def weights_options(func):
    """--weights/--num-classes/--seed, shared by every command that builds a model."""
    func = click.option("--seed", type=int, default=0, show_default=True,
                        help="Seed for --weights random.")(func)
    func = click.option("--num-classes", type=click.IntRange(min=1), default=None,
                        help="Classifier size (default: from the weights, else 1000).")(func)
    func = click.option("--weights", "weights", default="imagenet", show_default=True, metavar="imagenet|random|none|PATH",
                        help="Pretrained download, seeded random init, PyTorch default init, or a checkpoint file.")(func)
    return func
