"""The optional ``[train]`` extra: import its packages inside functions, with one clear error when missing."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError

__all__ = ["TRAIN_INSTALL", "require"]

TRAIN_INSTALL = 'pip install torch==2.13.0 && pip install -e ".[train]"'


def require(module: str, *, what: str = "training") -> Any:
    """Import ``module`` (torch, transformers, trl, peft, gguf, ...) or raise a :class:`ConfigError`
    naming the install command of the ``[train]`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{what} needs the optional [train] extra ({module} is not installed): "
                          f"{TRAIN_INSTALL}") from exc
