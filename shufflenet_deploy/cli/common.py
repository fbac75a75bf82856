"""The ``sdeploy`` group and what every command shares: error handling, JSON output, weight options."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import click

from .. import __version__
from ..backends import COMMON_OPTIONS, Option, target_backends, target_names
from ..errors import FAILURE_EXIT_CODE, SdeployError, describe_os_error
from ..manifest import MAX_CLASSES
from ..preprocess import MAX_IMG_SIZE, MIN_IMG_SIZE
from ..sysutil import MAX_THREADS, interrupt_handlers
from ..weights import MAX_SEED

#: Set to 1 to see the traceback of an unexpected error instead of its one-line summary.
DEBUG_ENV = "SDEPLOY_DEBUG"


class FiniteFloat(click.ParamType):
    """A float within [low, high] that is a real number: NaN and infinity are refused like any bad value."""

    name = "float"

    def __init__(self, low: float | None = None, high: float | None = None, low_open: bool = False):
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        too_low = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        if too_low or (self.high is not None and number > self.high):
            bound = f"{'above' if self.low_open else 'at least'} {self.low}" if self.low is not None else ""
            bound += f"{' and ' if bound else ''}at most {self.high}" if self.high is not None else ""
            self.fail(f"{value} is out of range: it must be {bound}", param, ctx)
        return number


#: Bounded ranges for the numbers every command takes: no value can ask for an absurd allocation.
IMG_SIZE = click.IntRange(MIN_IMG_SIZE, MAX_IMG_SIZE)
SEED = click.IntRange(0, MAX_SEED)
THREADS = click.IntRange(1, MAX_THREADS)
NUM_CLASSES = click.IntRange(1, MAX_CLASSES)
RUNS = click.IntRange(1, 100_000)


class CliError(click.ClickException):
    """Printed by click as one ``Error: ...`` line on stderr, no traceback."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class SdeployGroup(click.Group):
    """Every way a command can end becomes an exit code and, on failure, exactly one ``Error:`` line."""

    def main(self, *args, **kwargs):
        # SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so every cleanup path runs.
        with interrupt_handlers():
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SdeployError as exc:
            raise CliError(str(exc), exc.exit_code) from None
        except (click.ClickException, click.Abort, click.exceptions.Exit):
            raise
        except KeyboardInterrupt:
            raise CliError("interrupted; work in progress was removed, nothing is half-written", FAILURE_EXIT_CODE) from None
        except MemoryError:
            raise CliError("out of memory; use a smaller --img-size or --batch, or a machine with more memory",
                           FAILURE_EXIT_CODE) from None  # fmt: skip
        except OSError as exc:
            raise CliError(describe_os_error(exc, exc.filename or os.getcwd()), FAILURE_EXIT_CODE) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
            raise CliError(f"unexpected internal error ({type(exc).__name__}: {first[:200]}); please report it, "
                           f"with the traceback that {DEBUG_ENV}=1 shows", FAILURE_EXIT_CODE) from None  # fmt: skip


@click.group(cls=SdeployGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", "-V", prog_name="sdeploy")
def main() -> None:
    """Export ShuffleNet V1/V2 classifiers for phones (ExecuTorch, LiteRT, Core ML, ONNX, NCNN...) and prove they are right."""


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def weights_options(func):
    """--weights/--num-classes/--seed, shared by every command that builds a model."""
    func = click.option("--seed", type=SEED, default=0, show_default=True,
                        help="Seed for --weights random.")(func)
    func = click.option("--num-classes", type=NUM_CLASSES, default=None,
                        help="Classifier size (default: from the weights, else 1000).")(func)
    func = click.option("--weights", "weights", default="imagenet", show_default=True, metavar="imagenet|random|none|PATH",
                        help="Pretrained download, seeded random init, PyTorch default init, or a checkpoint file.")(func)
    return func


class GroupedOption(click.Option):
    """An option shown under a heading of its own in ``--help`` (e.g. the backend that reads it)."""

    def __init__(self, *args, group: str = "Options", **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """``--help`` lists options under their group's heading, in the order the groups first appear."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                groups.setdefault(getattr(param, "group", "Options"), []).append(record)
        for title, rows in groups.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def target_choice_metavar() -> str:
    return "|".join([*target_names(), "all"])


def export_option_decorators(skip: tuple[str, ...] = ()):
    """click options for every declared export option: the common ones, then each backend's under its heading."""
    declared = [(o, "Options for every target") for o in COMMON_OPTIONS]
    declared += [(o, f"{b.name} options") for b in target_backends() for o in b.options]
    return [_click_option(option, group) for option, group in declared if option.name not in skip]


def apply(decorators, func):
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _click_option(option: Option, group: str):
    kwargs = {"default": option.default, "help": option.help, "group": group, "cls": GroupedOption,
              "show_default": option.default not in (None, False)}  # fmt: skip
    if option.type is bool:
        return click.option(option.flag, option.name, is_flag=True, **kwargs)
    if option.choices:
        kind = click.Choice(list(option.choices))
    elif option.type is int and (option.minimum, option.maximum) != (None, None):
        kind = click.IntRange(min=option.minimum, max=option.maximum)
    elif option.type is Path:
        kind = click.Path()
    else:
        kind = option.type
    return click.option(option.flag, option.name, type=kind, metavar=option.metavar, **kwargs)
