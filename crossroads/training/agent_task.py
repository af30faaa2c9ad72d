"""Agent selection as an LLM-router training task: the reasoning router (``type: reasoning``).

The rows come from exactly the split the agent-selection suite scores
(:func:`~crossroads.evals.agent_selection.prepare_selection_data`): training uses the *fit* rows only,
never the test rows. Prompts are built by a :class:`~crossroads.routers.reasoning.ReasoningRouter`
constructed as :func:`~crossroads.evals.llm_routers.evaluate_reasoning_router` constructs it (same agent
cards, out-of-scope target, MiniLM shortlist of ``m`` cards), through the router's own
``candidates_of`` → ``shortlist_of`` → ``messages``: training and run time see byte-identical prompts.

- SFT completion: the JSON the router parses, ``{"reasoning": "", "agents": [gold]}`` serialised with
  ``json.dumps`` defaults, which is what :meth:`ReasoningRouter.label_prefix` expects. The reasoning is
  left **empty**: every generated token costs decision latency on a CPU, and a one-line template would
  only restate the label. Out-of-scope rows answer ``["out_of_scope"]``.
- Rows whose gold agent is not in the shortlist are **skipped** (counted in :attr:`skipped`): no answer
  among the shown cards is right, and teaching out-of-scope for an in-scope request would teach false
  out-of-scope answers. Rows used as card examples are skipped too (the answer would be in the prompt or
  in the shortlist index: ``shortlist_index: examples`` finds an agent by its card examples).
- GRPO reward: the public :func:`~crossroads.routers.rewards.agent_selection_reward` (1 when the gold
  agent is in the chosen set, minus ``size_penalty`` per extra agent, -1 for a garbled reply), wrapped in
  trl's reward signature.
- :meth:`evaluate`: :func:`evaluate_reasoning_router` with the trained model, through ``router.route``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import file_sha256
from ..errors import ConfigError
from ..types import RouteContext, TargetInfo
from .task import RewardFunc, completion_text

__all__ = ["AgentSelectionTask", "completion_text"]

OOS = "oos"


def _resolve(data: str) -> tuple[str, Path]:
    from ..evals.agent_selection import _is_clinc
    from ..evals.suite import BUILTIN_DATA

    if data.startswith("builtin:"):
        name = data.split(":", 1)[1]
        if name not in BUILTIN_DATA or BUILTIN_DATA[name][0] not in ("clinc150", "banking77"):
            known = sorted(k for k, v in BUILTIN_DATA.items() if v[0] in ("clinc150", "banking77"))
            raise ConfigError(f"agent-selection training data {data!r} is not a built-in intent dataset; "
                              f"known: {', '.join('builtin:' + k for k in known)}, or a text,label CSV/JSONL file")
        fmt, path, _ = BUILTIN_DATA[name]
        return fmt, path
    path = Path(data)
    if not path.exists():
        raise ConfigError(f"training data file {path} does not exist; give builtin:clinc150, builtin:banking77 "
                          "or a text,label CSV/JSONL file")
    fmt = "clinc150" if path.name.endswith((".jsonl", ".jsonl.gz")) and _is_clinc(path) else "file"
    return fmt, path


class AgentSelectionTask:
    """The reasoning router trained on an intent dataset (CLINC150, Banking77, or a user's ``text,label`` file).

    Example::

        task = AgentSelectionTask("builtin:clinc150", shortlist=10, examples=1)
        rows = task.sft_rows(limit=500)      # {"prompt": [system, user], "completion": [assistant]}
        task.evaluate({"provider": "llama_cpp", "path": "out/router.gguf"}, samples=100)
    """

    name = "agent_selection"
    router_type = "reasoning"

    def __init__(
        self,
        data: str = "builtin:clinc150",
        *,
        test_file: str | Path | None = None,
        shortlist: int | None = 10,
        k: int = 3,
        examples: int = 1,
        size_penalty: float = 0.1,
        oos_share: float = 0.1,
        label_scores: bool = False,
        card_examples: int = 3,
        shortlist_index: str = "card",
        shortlist_order: str = "pool",
        test_fraction: float = 0.2,
        seed: int = 0,
        embedder: Any = None,
    ) -> None:
        from ..evals.agent_selection import agent_cards, prepare_selection_data
        from ..routers.reasoning import ReasoningRouter

        if examples < 0:
            raise ConfigError(f"agent-selection task: examples per card must be >= 0, got {examples}")
        if not 0.0 <= oos_share < 1.0:
            raise ConfigError(f"agent-selection task: oos_share must be in [0, 1), got {oos_share}")
        self.data = data
        self.fmt, self.path = _resolve(data)
        self.test_file = Path(test_file) if test_file else None
        if self.test_file is not None and not self.test_file.exists():
            raise ConfigError(f"test file {self.test_file} does not exist")
        self.seed = seed
        self.k = k
        self.examples = examples
        self.size_penalty = size_penalty
        self.oos_share = oos_share
        self.label_scores = label_scores
        self.shortlist = shortlist
        self.split = prepare_selection_data(self.fmt, self.path, test_file=self.test_file,
                                            test_fraction=test_fraction, seed=seed)
        fit = self.split.fit
        self.has_oos = OOS in set(fit.labels) | set(self.split.test.labels)
        # exactly as evaluate_reasoning_router builds them (same seed, same example count)
        self.cards = agent_cards(fit, seed=seed, examples=examples)
        infos = [TargetInfo(name=a, description=c["description"], metadata={"examples": c["examples"]})
                 for a, c in self.cards.items()]
        if self.has_oos:
            infos.append(TargetInfo(name=OOS, description="out of scope"))
        self.candidates = tuple(infos)
        if embedder is None and shortlist is not None and shortlist < len(self.cards):
            from ..agents.embeddings import default_embedder

            embedder = default_embedder()
        self.embedder = embedder
        self.card_examples = card_examples
        self.shortlist_index = shortlist_index
        self.shortlist_order = shortlist_order
        self.router = ReasoningRouter(out_of_scope=OOS if self.has_oos else None, shortlist=shortlist,
                                      embedder=embedder, k=k, card_examples=card_examples,
                                      shortlist_index=shortlist_index, shortlist_order=shortlist_order)
        self.skipped: dict[str, int] = {}

    # -- prompts -------------------------------------------------------------------------------
    def router_params(self) -> dict[str, Any]:
        """The ``params`` of a ``type: reasoning`` router that sees the prompts this task trains on
        (plus ``model``); the suite's ``examples`` card setting included."""
        return {"shortlist": self.shortlist, "k": self.k, "examples": self.examples, "label_scores": self.label_scores,
                "card_examples": self.card_examples, "shortlist_index": self.shortlist_index,
                "shortlist_order": self.shortlist_order}

    def prompt(self, query: str) -> tuple[list[dict[str, str]], list[str]]:
        """The router's messages for ``query`` (as dicts) and the shortlisted candidate names."""
        ctx = RouteContext(query=query, candidates=self.candidates)
        cands = self.router.shortlist_of(ctx, self.router.candidates_of(ctx))
        msgs = self.router.messages(ctx, cands)
        return [{"role": m.role, "content": m.content} for m in msgs], [c.name for c in cands]

    @staticmethod
    def answer(gold: str) -> str:
        """The SFT completion for a gold agent (``oos`` → ``["out_of_scope"]``)."""
        from ..routers.reasoning import OUT_OF_SCOPE

        return json.dumps({"reasoning": "", "agents": [OUT_OF_SCOPE if gold == OOS else gold]})

    def _pick(self, limit: int | None, seed: int) -> list[int]:
        fit = self.split.fit
        used = {t for c in self.cards.values() for t in c["examples"]}
        rng = np.random.default_rng(seed)
        ins = [i for i, (t, g) in enumerate(zip(fit.texts, fit.labels, strict=True)) if g != OOS and t not in used]
        oos = [i for i, g in enumerate(fit.labels) if g == OOS]
        self.skipped["card_example"] = len(fit) - len(ins) - len(oos)
        ins = [ins[j] for j in rng.permutation(len(ins))]
        oos = [oos[j] for j in rng.permutation(len(oos))]
        if limit is None:
            picked = ins + oos
        else:
            n_oos = min(len(oos), round(limit * self.oos_share)) if oos else 0
            picked = ins[: limit - n_oos] + oos[:n_oos]
        return [picked[j] for j in rng.permutation(len(picked))]

    def _rows(self, limit: int | None, seed: int) -> list[tuple[list[dict[str, str]], list[str], str]]:
        fit = self.split.fit
        out = []
        skipped = 0
        for i in self._pick(None if limit is None else int(limit * 1.1) + 5, seed):
            msgs, names = self.prompt(fit.texts[i])
            gold = fit.labels[i]
            if gold != OOS and gold not in names:
                skipped += 1
                continue
            out.append((msgs, names, gold))
            if limit is not None and len(out) >= limit:
                break
        self.skipped["gold_not_in_shortlist"] = skipped
        return out

    def sft_rows(self, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        return [{"prompt": msgs, "completion": [{"role": "assistant", "content": self.answer(gold)}]}
                for msgs, _, gold in self._rows(limit, seed)]

    def grpo_rows(self, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        return [{"prompt": msgs, "gold": gold, "candidates": names} for msgs, names, gold in self._rows(limit, seed + 1)]

    # -- reward --------------------------------------------------------------------------------
    def reward_funcs(self) -> Sequence[RewardFunc]:
        from ..routers.rewards import agent_selection_reward

        k, penalty = self.k, self.size_penalty

        def agent_set_reward(prompts: Any, completions: Sequence[Any], gold: Sequence[str],
                             candidates: Sequence[Sequence[str]], **_: Any) -> list[float]:
            """agent_selection_reward: gold in the chosen set - size_penalty x extra agents; -1 when garbled."""
            return [agent_selection_reward(completion_text(c), g, candidates=list(names), k=k, oos_label=OOS,
                                           size_penalty=penalty)
                    for c, g, names in zip(completions, gold, candidates, strict=True)]

        return [agent_set_reward]

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, model_spec: Mapping[str, Any], *, samples: int, seed: int = 0) -> dict[str, Any]:
        """:func:`~crossroads.evals.llm_routers.evaluate_reasoning_router` on the suite's test split with
        ``model_spec``. The sample is drawn with the task's seed: the cards depend on it, and must be
        the ones the model was trained on."""
        from ..evals.llm_routers import evaluate_reasoning_router

        if seed != self.seed:
            raise ConfigError(f"agent-selection evaluate: seed {seed} differs from the task's seed {self.seed}; the "
                              "cards (example utterances) are drawn with the task's seed and must match training")
        params = {"samples": samples, "model": dict(model_spec), **self.router_params()}
        return evaluate_reasoning_router(self.split.fit, self.split.test, params, self.embedder, seed=self.seed)

    def data_hashes(self) -> dict[str, str]:
        out = {str(self.path.name): file_sha256(self.path)}
        if self.test_file is not None:
            out[self.test_file.name] = file_sha256(self.test_file)
        return out

    def describe(self) -> dict[str, Any]:
        """What the model card says about the task."""
        return {"task": self.name, "data": self.data, "split": self.split.protocol, "fit_rows": len(self.split.fit),
                "agents": len(self.cards), "out_of_scope": self.has_oos, "router_params": self.router_params(),
                "size_penalty": self.size_penalty, "oos_share": self.oos_share, "skipped": dict(self.skipped),
                "sft_completion": "{\"reasoning\": \"\", \"agents\": [gold]} (empty reasoning: fewest tokens)"}
