"""Route targets (agents, tools, models) and the chat-model seam."""

from .health import HealthTracker
from .models import ChatModel, FunctionModel, ModelResponse
from .targets import Target, agent, llm_agent, model, tool

__all__ = ["ChatModel", "FunctionModel", "HealthTracker", "ModelResponse", "Target", "agent", "llm_agent", "model", "tool"]
