"""Model backends behind the :class:`~crossroads.agents.models.ChatModel` seam.

Each module imports its heavy dependency (litellm, llama-cpp-python) only when a model is built.
"""

from .catalogue import ModelCatalogue, ModelDescriptor
from .litellm_model import LiteLLMModel, OpenAIClientModel
from .llama_cpp_model import LlamaCppModel, softmax_scores
from .optional import missing_backend_note, optional_backend_available
from .replay import RecordedOutcomes, RecordedRow, ReplayModel
from .resilience import AllModelsFailedError, ResilientModel

__all__ = [
    "AllModelsFailedError",
    "LiteLLMModel",
    "LlamaCppModel",
    "ModelCatalogue",
    "ModelDescriptor",
    "OpenAIClientModel",
    "RecordedOutcomes",
    "RecordedRow",
    "ReplayModel",
    "ResilientModel",
    "missing_backend_note",
    "optional_backend_available",
    "softmax_scores",
]
