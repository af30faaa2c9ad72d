"""Scrub secrets (API keys, bearer tokens, passwords) before anything reaches a trace."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_obj", "refresh_env_secrets"]

REDACTED = "[REDACTED]"
SECRET_KEY_NAMES = re.compile(r"(api[_-]?key|authorization|auth[_-]?token|access[_-]?token|secret|password|passwd|bearer)", re.I)
_PATTERNS = [
    re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{12,}"),  # OpenAI / Anthropic / Stripe style
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{12,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),  # GitHub tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),  # Slack tokens
    re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._\-~+/]+=*"),
    re.compile(r"(?i)\b(api[_-]?key|token|secret|password|authorization)\b(\s*[:=]\s*)(['\"]?)[^\s'\",;]{4,}"),
]
_ENV_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)
MIN_ENV_SECRET_LEN = 8
_QUICK = re.compile("|".join(f"(?:{p.pattern.replace('(?i)', '')})" for p in _PATTERNS), re.I)  # a superset pre-check
_env_cache: tuple[int, re.Pattern[str] | None] = (-1, None)


def _env_secret_pattern() -> re.Pattern[str] | None:
    """One alternation of the values of secret-named env vars; rebuilt when the environment grows or shrinks."""
    global _env_cache
    size = len(os.environ)
    if _env_cache[0] != size:
        values = sorted({v for k, v in os.environ.items() if _ENV_SECRET_NAME.search(k) and len(v) >= MIN_ENV_SECRET_LEN},
                        key=len, reverse=True)
        _env_cache = (size, re.compile("|".join(re.escape(v) for v in values)) if values else None)
    return _env_cache[1]


def refresh_env_secrets() -> None:
    """Forget the cached env-var secrets (call after changing a secret's value in place)."""
    global _env_cache
    _env_cache = (-1, None)


def redact(text: str) -> str:
    """Replace anything that looks like a credential, or equals a secret env var, with ``[REDACTED]``."""
    if not text:
        return text
    env = _env_secret_pattern()
    if env is not None:
        text = env.sub(REDACTED, text)
    if _QUICK.search(text) is None:
        return text
    for pat in _PATTERNS:
        if pat.groups >= 3:
            text = pat.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{REDACTED}", text)
        else:
            text = pat.sub(REDACTED, text)
    return text


def redact_obj(obj: Any) -> Any:
    """Redact a JSON-like structure: secret-named keys lose their values, strings are scrubbed."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_KEY_NAMES.search(k) else redact_obj(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj
