"""Model backends behind the :class:`~crossroads.agents.models.ChatModel` seam.

Each module imports its heavy dependency (litellm, llama-cpp-python) only when a model is built.
"""

from .catalogue import ModelCatalogue, ModelDescriptor
from .failures import Failure, FailureKind, classify_error, is_retryable, is_transport_error
from .litellm_model import LiteLLMModel, OpenAIClientModel
from .llama_cpp_model import LlamaCppModel, softmax_scores
from .optional import missing_backend_note, optional_backend_available
from .replay import RecordedOutcomes, RecordedRow, ReplayModel
from .resilience import AllModelsFailedError, ResilientModel, StreamBrokenError

__all__ = [
    "AllModelsFailedError",
    "Failure",
    "FailureKind",
    "LiteLLMModel",
    "LlamaCppModel",
    "ModelCatalogue",
    "ModelDescriptor",
    "OpenAIClientModel",
    "RecordedOutcomes",
    "RecordedRow",
    "ReplayModel",
    "ResilientModel",
    "StreamBrokenError",
    "classify_error",
    "is_retryable",
    "is_transport_error",
    "missing_backend_note",
    "optional_backend_available",
    "softmax_scores",
]
