"""Scrub secrets (API keys, bearer tokens, passwords) before anything reaches a trace."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_obj"]

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


def _env_secrets() -> list[str]:
    return [v for k, v in os.environ.items() if _ENV_SECRET_NAME.search(k) and len(v) >= MIN_ENV_SECRET_LEN]


def redact(text: str) -> str:
    """Replace anything that looks like a credential, or equals a secret env var, with ``[REDACTED]``."""
    if not text:
        return text
    for value in _env_secrets():
        if value in text:
            text = text.replace(value, REDACTED)
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
