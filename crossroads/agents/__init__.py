"""Route targets (agents, tools, models) and the chat-model seam."""

from .health import HealthTracker
from .models import ChatModel, ChatModelBase, FunctionModel, ModelResponse, StreamChunk
from .targets import Target, agent, llm_agent, model, tool

__all__ = ["ChatModel", "ChatModelBase", "FunctionModel", "HealthTracker", "ModelResponse", "StreamChunk", "Target", "agent",
           "llm_agent", "model", "tool"]
