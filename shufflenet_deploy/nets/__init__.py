"""ShuffleNet V1 and V2 definitions and the registry that names them.

Importing this package registers every architecture.
"""

from . import shufflenet_v1, shufflenet_v2  # noqa: F401  (registration side effect)
from .registry import Accuracy, ArchSpec, get_arch, list_models

__all__ = ["Accuracy", "ArchSpec", "get_arch", "list_models"]
