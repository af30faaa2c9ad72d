"""Training routers on this machine (optional ``[train]`` extra: torch, transformers, peft, trl, accelerate).

- :mod:`crossroads.training.encoder` - fine-tune all-MiniLM-L6-v2 for agent selection, export to ONNX
  (``crossroads train encoder``).
- :mod:`crossroads.training.llm_router` - SFT then GRPO of a small LLM router (SmolLM2-135M-Instruct by
  default), exported for llama.cpp (``crossroads train llm-router``); the task-specific data and rewards
  come from a :class:`~crossroads.training.task.LLMRouterTask`.

Nothing here is imported by the routers: a trained artefact is loaded by the router that runs it.
"""
