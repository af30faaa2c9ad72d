"""Model routing as an LLM-router training task: Router-R1 (``type: router_r1``) over a replayed pool.

The rows come from exactly the split the query-routing suite scores (:func:`~crossroads.evals.suite.
query_outcomes`, then :func:`~crossroads.evals.query_routing.prepare_query_data`): training reads the
*train* rows only, never the test rows. Prompts are built by :meth:`RouterR1Router.messages` with the
pool cards of :func:`~crossroads.evals.llm_routers.router_r1_candidates` (recorded price, mean training
score), the function :func:`~crossroads.evals.llm_routers.evaluate_router_r1` uses: training and
evaluation prompts are byte-identical.

- SFT, first turn: ``<think>THINK</think><search>MODEL: SUB-QUERY</search>`` where MODEL maximises
  :func:`~crossroads.routers.rewards.router_r1_replay_reward` on the row's recorded scores and prices for
  the task's cost weight ``c`` (ties: the cheaper, then the higher mean training score, then pool order);
  THINK is one short fixed sentence (every generated token is decision latency on a CPU) and SUB-QUERY
  the query's first words (the replay pool answers the original query: ``send: original``).
- SFT, second turn (a share ``answer_share`` of the rows): after the consulted model's reply comes back
  as ``<information>``, answer with it: ``<think>...</think><answer>REPLY</answer>``. Without it the policy
  tends to consult again, and every consult is paid.
- GRPO (first turn only): Router-R1's reward ``(outcome + format) * (1 - c) + cost_reward * c`` from the
  row's recorded outcome and price of the routed model, the cost scale being the row's most expensive
  model (:func:`router_r1_replay_reward`; the recorded score stands in for the exact match of the answer).
- :meth:`evaluate`: :func:`evaluate_router_r1` with the trained model, through ``router.route``.

Default ``c = 0.4``: the suite scores a one-point router by AIQ = quality x (M - cost) / M; at the
cheapest model's point on the training rows (quality ~0.57, relative cost ~0.11, M = 1) a unit of
relative cost is worth ~0.57/0.89 ~ 0.64 of a unit of quality, i.e. c / (1 - c) ~ 0.64, c ~ 0.4.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import Message, RouteContext
from .task import RewardFunc, completion_text

__all__ = ["DEFAULT_C", "ModelRoutingTask", "best_replay_model"]

DEFAULT_C = 0.4
THINK = "Cheapest model likely right."
ANSWER_THINK = "Its reply answers it."
SUB_QUERY_WORDS = 6
ANSWER_WORDS = 20


def _words(text: str, n: int) -> str:
    """The first ``n`` words of ``text``'s first non-empty line, without ``<`` (the turn grammar forbids it)."""
    line = next((x for x in text.splitlines() if x.strip()), "")
    words = line.replace("<", " ").split()
    out = " ".join(words[:n]) + (" ..." if len(words) > n else "")
    return out or "the question"


def best_replay_model(scores: Sequence[float], costs: Sequence[float], models: Sequence[str], *, c: float,
                      quality: Sequence[float] | None = None) -> str:
    """The pool model with the highest :func:`router_r1_replay_reward` for a route to it (recorded
    ``scores``, ``costs`` in USD, cost scale = the row's most expensive model); ties: the cheaper, then
    the higher ``quality`` (mean training score), then the earlier model."""
    from ..routers.rewards import router_r1_replay_reward

    scale = max(max(costs), 1e-12)
    s, k = dict(zip(models, scores, strict=True)), dict(zip(models, costs, strict=True))
    q = list(quality) if quality is not None else [0.0] * len(models)

    def key(j: int) -> tuple[float, float, float, int]:
        m = models[j]
        r = router_r1_replay_reward(f"<think></think><search>{m}: q</search>", scores=s, costs=k,
                                    cost_scale_usd=scale, c=c, pool=models)
        return (-round(r, 12), costs[j], -q[j], j)

    return models[min(range(len(models)), key=key)]


class ModelRoutingTask:
    """Router-R1 trained on recorded outcomes (``builtin:llmrouter-9models``, ``builtin:routellm-2models`` or
    a user's outcome file in the same format, with ``prices`` for files without per-row prices).

    Example::

        task = ModelRoutingTask("builtin:llmrouter-9models", c=0.4)
        rows = task.sft_rows(limit=500)      # {"prompt": [system, user], "completion": [assistant]}
        task.evaluate({"provider": "llama_cpp", "path": "out/router.gguf"}, samples=100)
    """

    name = "model_routing"
    router_type = "router_r1"

    def __init__(
        self,
        data: str = "builtin:llmrouter-9models",
        *,
        test_file: str | Path | None = None,
        prices: str | Path | None = None,
        c: float = DEFAULT_C,
        max_rounds: int = 3,
        answer_share: float = 0.25,
        test_fraction: float = 0.2,
        seed: int = 0,
        think: str = THINK,
    ) -> None:
        from ..evals.llm_routers import router_r1_candidates
        from ..evals.query_routing import prepare_query_data
        from ..evals.suite import DataSpec, query_outcomes, resolve_data
        from ..routers.router_r1 import RouterR1Router

        if not 0.0 <= c <= 1.0:
            raise ConfigError(f"model-routing task: c (the cost weight) must be in [0, 1], got {c}")
        if not 0.0 <= answer_share < 1.0:
            raise ConfigError(f"model-routing task: answer_share must be in [0, 1), got {answer_share}")
        if "<" in think or ">" in think:
            raise ConfigError("model-routing task: the think text must not contain '<' or '>' (the turn grammar)")
        self.data, self.c, self.max_rounds, self.answer_share, self.seed, self.think = (
            data, float(c), int(max_rounds), float(answer_share), seed, think)
        fields: dict[str, Any] = {"test_fraction": test_fraction, "seed": seed}
        if prices is not None:
            fields["prices"] = str(Path(prices).expanduser().resolve())
        if not data.startswith("builtin:"):
            fields["format"] = "outcomes"
            data = str(Path(data).expanduser().resolve())
        if test_file is not None:
            fields.update(train=data, test=str(Path(test_file).expanduser().resolve()))
        else:
            fields["dataset"] = data
        self.spec = DataSpec.model_validate(fields)
        self.files = resolve_data(self.spec, Path.cwd())
        if self.files.format != "outcomes":
            raise ConfigError(f"model-routing training needs recorded outcomes (builtin:llmrouter-9models, "
                              f"builtin:routellm-2models or an outcome JSONL file), not {self.files.format} data ({data})")
        self.train_o, self.test_o = query_outcomes(self.files, self.spec, f"model_routing:{self.data}")
        self.train = prepare_query_data(self.train_o, None)
        self.test = prepare_query_data(self.test_o, None, models=self.train.models)
        self.models = list(self.train.models)
        self.candidates = router_r1_candidates(self.train, self.train_o.prices)
        self.quality = [float(c.quality or 0.0) for c in self.candidates]
        self.router = RouterR1Router(pool={m: self.train_o.model(m) for m in self.models}, send="original",
                                     max_rounds=self.max_rounds)
        self.targets = [best_replay_model(self.train.Y[i].tolist(), self.train.C[i].tolist(), self.models, c=self.c,
                                          quality=self.quality) for i in range(len(self.train))]

    # -- prompts -------------------------------------------------------------------------------
    def router_params(self) -> dict[str, Any]:
        """The ``params`` of a ``type: router_r1`` suite entry that sees the prompts this task trains on (plus ``model``)."""
        return {"max_rounds": self.max_rounds}

    def messages(self, i: int) -> list[dict[str, str]]:
        """The router's first-turn messages for training row ``i`` (as dicts)."""
        ctx = RouteContext(query=self.train.prompts[i], candidates=self.candidates)
        return [{"role": m.role, "content": m.content} for m in self.router.messages(ctx, self.candidates)]

    def route_turn(self, i: int, model: str | None = None) -> str:
        """The first-turn completion routing row ``i`` to ``model`` (default: its reward-maximising model)."""
        m = model or self.targets[i]
        return f"<think>{self.think}</think><search>{m}: {_words(self.train.prompts[i], SUB_QUERY_WORDS)}</search>"

    def answer_turn(self, i: int) -> tuple[list[dict[str, str]], str]:
        """Second turn of row ``i``: the messages after the target's reply came back, and the answer."""
        m = self.targets[i]
        reply = self.router.pool_model(m).complete([Message(role="user", content=self.train.prompts[i])]).text or ""
        msgs = [*self.messages(i), {"role": "assistant", "content": self.route_turn(i)},
                {"role": "user", "content": f"<information>{reply}</information>"}]
        answer = " ".join(re.sub(r"[<>]", " ", reply).split()[:ANSWER_WORDS]) or "no answer"
        return msgs, f"<think>{ANSWER_THINK}</think><answer>{answer}</answer>"

    def _pick(self, limit: int | None, seed: int) -> list[int]:
        order = np.random.default_rng(seed).permutation(len(self.train)).tolist()
        return order if limit is None else order[:limit]

    def sft_rows(self, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """``limit`` rows (default: every training row): first turns, and second turns for ``answer_share`` of them."""
        picked = self._pick(limit, seed)
        n2 = int(round(self.answer_share * len(picked)))
        rows: list[dict[str, Any]] = []
        for j, i in enumerate(picked):
            if j < len(picked) - n2:
                rows.append({"prompt": self.messages(i),
                             "completion": [{"role": "assistant", "content": self.route_turn(i)}]})
            else:
                msgs, answer = self.answer_turn(i)
                rows.append({"prompt": msgs, "completion": [{"role": "assistant", "content": answer}]})
        rng = np.random.default_rng(seed + 7)
        return [rows[k] for k in rng.permutation(len(rows))]

    def grpo_rows(self, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """First-turn prompts with the columns the reward reads: ``pool``, ``scores``, ``costs`` (USD), ``cost_scale_usd``."""
        return [{"prompt": self.messages(i), "pool": list(self.models),
                 "scores": [float(x) for x in self.train.Y[i]], "costs": [float(x) for x in self.train.C[i]],
                 "cost_scale_usd": float(max(self.train.C[i].max(), 1e-12))}
                for i in self._pick(limit, seed + 1)]

    # -- reward --------------------------------------------------------------------------------
    def reward_funcs(self) -> Sequence[RewardFunc]:
        from ..routers.rewards import router_r1_replay_reward

        c = self.c

        def router_r1_replay(prompts: Any, completions: Sequence[Any], pool: Sequence[Sequence[str]],
                             scores: Sequence[Sequence[float]], costs: Sequence[Sequence[float]],
                             cost_scale_usd: Sequence[float], **_: Any) -> list[float]:
            """router_r1_replay_reward: (outcome + format) x (1 - c) + cost_reward x c on recorded outcomes."""
            return [router_r1_replay_reward(completion_text(comp), scores=dict(zip(p, s, strict=True)),
                                            costs=dict(zip(p, k, strict=True)), cost_scale_usd=float(sc), c=c,
                                            pool=list(p))
                    for comp, p, s, k, sc in zip(completions, pool, scores, costs, cost_scale_usd, strict=True)]

        return [router_r1_replay]

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, model_spec: Mapping[str, Any] | Any, *, samples: int, seed: int = 0) -> dict[str, Any]:
        """:func:`~crossroads.evals.llm_routers.evaluate_router_r1` on a seeded sample of the test split with
        ``model_spec`` (e.g. ``{"provider": "llama_cpp", "path": "router.gguf"}``, or a chat model)."""
        from ..evals.llm_routers import evaluate_router_r1

        model = dict(model_spec) if isinstance(model_spec, Mapping) else model_spec  # a spec, or a chat model
        params = {"samples": samples, "model": model, **self.router_params()}
        return evaluate_router_r1(self.train, self.test, self.test_o, params, seed=seed)

    def data_hashes(self) -> dict[str, str]:
        return self.files.hashes()

    def target_counts(self) -> dict[str, int]:
        """How often each pool model is the SFT target on the training rows."""
        out = {m: 0 for m in self.models}
        for t in self.targets:
            out[t] += 1
        return out

    def describe(self) -> dict[str, Any]:
        """What the model card says about the task."""
        return {"task": self.name, "data": self.data, "split": self.files.describe(self.spec),
                "train_rows": len(self.train), "test_rows": len(self.test), "pool": self.models, "c": self.c,
                "router_params": self.router_params(), "answer_share": self.answer_share,
                "sft_target": "<think>THINK</think><search>MODEL: first words</search>, MODEL = argmax of "
                              "router_r1_replay_reward on the row's recorded scores and prices (ties: cheaper)",
                "sft_target_counts": self.target_counts(),
                "reward": "router_r1_replay_reward: (recorded score + format) x (1 - c) + (1 - cost / row's max "
                          "cost) x c; format violation: -1 x (1 - c)"}
