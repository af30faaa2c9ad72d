"""Test doubles that ship with crossroads (like httpx's MockTransport): use them in your own tests."""

from .backends import needs_backend
from .openai_server import ScriptedOpenAIServer

__all__ = ["ScriptedOpenAIServer", "needs_backend"]
