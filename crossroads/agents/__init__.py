"""Route targets (agents, tools, models) and the chat-model seam."""

from .health import HealthTracker
from .models import ChatModel, ChatModelBase, FunctionModel, ModelChunk, ModelResponse
from .targets import Target, agent, llm_agent, model, tool

__all__ = ["ChatModel", "ChatModelBase", "FunctionModel", "HealthTracker", "ModelResponse", "ModelChunk", "Target", "agent",
           "llm_agent", "model", "tool"]
