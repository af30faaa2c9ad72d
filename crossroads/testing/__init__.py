"""Test doubles that ship with crossroads (like httpx's MockTransport): use them in your own tests."""

from .openai_server import ScriptedOpenAIServer

__all__ = ["ScriptedOpenAIServer"]
