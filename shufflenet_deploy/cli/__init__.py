"""The ``sdeploy`` command line: parsing and printing only; the work lives in the library.

One module per command family; importing them registers their commands on ``main``.
"""

from . import apps, bench, doctor, export, finetune, verify, zoo  # noqa: F401  (registers the commands)
from .common import main

__all__ = ["main"]
