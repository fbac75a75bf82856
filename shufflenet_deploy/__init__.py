"""shufflenet-deploy: ShuffleNet V1/V2 from PyTorch to phones, with proof that every artifact is right."""

from __future__ import annotations

__version__ = "0.1.0"

from .apps.bundle import bundle
from .doctor import doctor
from .errors import SdeployError
from .export import export
from .nets import get_arch, list_models
from .verify import verify
from .zoo import create_model, load_model

__all__ = [
    "SdeployError", "__version__", "bundle", "create_model", "doctor", "export", "get_arch", "list_models", "load_model", "verify",
]
