"""``type: skills``: retrieve-then-rerank skill routing over a registry of thousands of skills.

Stage 1 retrieves a shortlist of ``shortlist`` skills by the local MiniLM embedding of each skill's
full body (name, description, argument docs, body) plus ``lexical_weight`` x a TF-IDF cosine (the
body is the decisive signal: SkillRouter, see ``../shared/docs/methods.md``). Stage 2 reranks the
shortlist with a :class:`~crossroads.skills.rerank.FusionReranker` fitted on training queries
(:meth:`SkillRouter.fit`). Below ``abstain_threshold`` (chosen on a validation slice of the training
queries) nothing is selected: ``select`` returns ``[]`` and ``route`` picks ``default``.

As a router it scores every candidate (skills outside the shortlist get ``-1``) and chooses the best
``route_k``; ``decision.metadata["skills"]`` lists the top-``k`` skills, which is what a tool-calling
agent should be given (``tools_for(query)``) instead of the whole registry.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SkillError
from ..routers._embedding import UsesEmbedder
from ..routers.base import Router
from ..routers.registry import register_router
from ..types import Decision, RouteContext
from .index import VIEWS, SkillIndex
from .lexical import LexicalIndex
from .loaders import load_skills
from .registry import SkillRegistry
from .rerank import FusionReranker, pair_features
from .skill import Skill, SkillView

__all__ = ["ScoredSkill", "SkillRouter", "builtin_skills"]

FLOOR = -1.0


@dataclass(frozen=True, slots=True)
class ScoredSkill:
    skill: Skill
    score: float
    rank: int


def builtin_skills() -> list[Skill]:
    """The 1,616 BFCL v4 functions of the ``bfcl-skills`` suite (Apache-2.0)."""
    from ..data import DATA_DIR

    path = DATA_DIR / "skills" / "bfcl_skills.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [Skill(name=d["name"], description=d.get("description", ""), parameters=d.get("parameters", {}),
                      tags=tuple(d.get("tags", ())), source="builtin:bfcl") for d in map(json.loads, f)]


def _as_registry(skills: Any) -> SkillRegistry:
    if isinstance(skills, SkillRegistry):
        return skills
    if isinstance(skills, (str, Path)):
        if str(skills) == "builtin:bfcl":
            return SkillRegistry(builtin_skills())
        return SkillRegistry(load_skills(skills))
    if isinstance(skills, Iterable):
        return SkillRegistry(skills)
    raise ConfigError("skills router: 'skills' must be a SkillRegistry, a list of Skill, a path to skill "
                      "definitions (Agent Skills folder, MCP tools/list JSON, OpenAI functions) or 'builtin:bfcl'")


@register_router()
class SkillRouter(UsesEmbedder, Router):
    """Pick the few skills a step needs from thousands.

    Example::

        router = SkillRouter("tools.json", k=5)           # or a SkillRegistry / list of Skill
        router.fit(train_queries, train_gold)              # optional: learned rerank + abstain threshold
        router.select("what's the weather in Rome?")       # -> [ScoredSkill(skill, score, rank), ...]
        router.save("skills.router"); SkillRouter.load("skills.router")
    """

    name = "skills"
    default: str | None

    def __init__(self, skills: Any = None, *, model: str | Path | None = None, index: str | Path | None = None,
                 k: int = 5, shortlist: int = 50, route_k: int = 1, default: str | None = None,
                 lexical_weight: float = 0.5, views: Sequence[SkillView] = VIEWS,
                 abstain_threshold: float | None = None, rerank: bool = True, retrieval_view: SkillView = "full",
                 embedder: Any = None, label: str | None = None) -> None:
        super().__init__(label=label)
        if model is not None:
            loaded = SkillRouter.load(model, skills=skills, embedder=embedder, label=label)
            self.__dict__.update(loaded.__dict__)
            if default is not None:
                self.default = default
            return
        if skills is None:
            raise ConfigError("skills router needs 'skills' (a path, a registry or 'builtin:bfcl') or 'model' "
                              "(a directory written by SkillRouter.save / crossroads train)")
        for key, val, lo in (("k", k, 1), ("shortlist", shortlist, 1), ("route_k", route_k, 1)):
            if not isinstance(val, int) or val < lo:
                raise ConfigError(f"skills router: {key!r} must be an integer >= {lo}, not {val!r}")
        if "full" not in views or retrieval_view not in views:
            raise ConfigError(f"skills router: 'views' {list(views)} must include 'full' (the body is the main "
                              f"signal) and the retrieval_view {retrieval_view!r}")
        if not np.isfinite(lexical_weight) or lexical_weight < 0:
            raise ConfigError(f"skills router: 'lexical_weight' must be a finite number >= 0, not {lexical_weight!r}")
        self.registry = _as_registry(skills)
        if not len(self.registry):
            raise ConfigError("skills router: the skill registry is empty")
        self.k, self.shortlist, self.route_k, self.default = k, shortlist, route_k, default
        self.lexical_weight = float(lexical_weight)
        self.views = tuple(views)
        self.abstain_threshold = abstain_threshold
        self.use_rerank = rerank
        self.retrieval_view = retrieval_view
        self.reranker: FusionReranker | None = None
        self.index_path = Path(index) if index is not None else None
        self._embedder = embedder
        self._index: SkillIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._build_lock = threading.Lock()
        self._cand_key: tuple[Any, ...] | None = None
        self._cand_val: tuple[tuple[str, ...], list[str], np.ndarray | None] | None = None

    # ---- index -------------------------------------------------------------------------------
    def build(self) -> SkillIndex:
        """Embed (or load from ``index``) every skill; called on first use."""
        with self._build_lock:
            if self._index is None:
                self._index = SkillIndex.build(self.registry, self.embedder, views=self.views, path=self.index_path)
                self._lexical = LexicalIndex([s.text("full") for s in self.registry])
            return self._index

    def referenced_targets(self) -> set[str]:
        return {self.default} if self.default else set()

    # ---- scoring -----------------------------------------------------------------------------
    def _rank(self, query: str, qvec: np.ndarray, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows best first, their final scores, their stage-1 scores) for the shortlist."""
        index = self.build()
        assert self._lexical is not None
        dense_full = index.vectors[self.retrieval_view] @ qvec
        stage1 = dense_full + self.lexical_weight * self._lexical.scores(query) if self.lexical_weight else dense_full
        if allowed is not None:
            stage1 = np.where(allowed, stage1, -np.inf)
        m = min(self.shortlist, int(np.isfinite(stage1).sum()))
        if m == 0:
            return np.zeros(0, int), np.zeros(0, np.float32), np.zeros(0, np.float32)
        rows = np.argpartition(-stage1, m - 1)[:m]
        rows = rows[np.argsort(-stage1[rows], kind="stable")]
        if self.reranker is None or not self.use_rerank:
            return rows, stage1[rows].astype(np.float32), stage1[rows]
        X = self._features(query, qvec, rows)
        final = self.reranker.score(X)
        order = np.argsort(-final, kind="stable")
        return rows[order], final[order], stage1[rows][order]

    def _features(self, query: str, qvec: np.ndarray, rows: np.ndarray) -> np.ndarray:
        index = self.build()
        assert self._lexical is not None
        dense = {v: index.vectors[v][rows] @ qvec for v in index.views}
        lex = self._lexical.scores(query, rows)
        return pair_features(dense, lex, rows, query, index.names)

    def _allowed(self, names: Iterable[str] | None) -> np.ndarray | None:
        return None if names is None else self._compute_allowed(names)

    def _candidates(self, candidates: tuple[Any, ...]) -> tuple[tuple[str, ...], list[str], np.ndarray | None]:
        """Names, skill names and row mask of a candidate tuple (cached: a flow passes the same tuple)."""
        if candidates is self._cand_key and self._cand_val is not None:
            return self._cand_val
        index = self.build()
        names = tuple(c.name for c in candidates)
        skill_names = [n for n in names if n in index.position]
        val = (names, skill_names, self._compute_allowed(skill_names))
        self._cand_key, self._cand_val = candidates, val
        return val

    def _compute_allowed(self, names: Iterable[str]) -> np.ndarray | None:
        index = self.build()
        mask = np.zeros(len(index), dtype=bool)
        for n in names:
            i = index.position.get(n)
            if i is not None:
                mask[i] = True
        return None if mask.all() else mask

    def _abstains(self, top: float | None) -> bool:
        return top is None or (self.abstain_threshold is not None and top < self.abstain_threshold)

    def select(self, query: str, k: int | None = None, *, among: Iterable[str] | None = None) -> list[ScoredSkill]:
        """The top-``k`` skills for ``query`` (``[]`` when the router abstains)."""
        return self.select_batch([query], k, among=among)[0]

    def select_batch(self, queries: Sequence[str], k: int | None = None, *,
                     among: Iterable[str] | None = None) -> list[list[ScoredSkill]]:
        k = self.k if k is None else k
        index = self.build()
        allowed = self._allowed(among)
        qvecs = self.embedder.embed(list(queries))
        out: list[list[ScoredSkill]] = []
        for q, qv in zip(queries, qvecs, strict=False):
            rows, scores, _ = self._rank(q, qv, allowed)
            if self._abstains(float(scores[0]) if len(scores) else None):
                out.append([])
                continue
            out.append([ScoredSkill(self.registry.get(index.names[int(r)]), float(s), i + 1)
                        for i, (r, s) in enumerate(zip(rows[:k], scores[:k], strict=False))])
        return out

    def tools_for(self, query: str, k: int | None = None) -> list[dict[str, Any]]:
        """OpenAI tool definitions of the top-``k`` skills: what a tool-calling agent is given."""
        return [s.skill.to_openai_tool() for s in self.select(query, k)]

    # ---- router protocol ---------------------------------------------------------------------
    def _decide(self, ctx: RouteContext, qvec: np.ndarray) -> Decision:
        index = self.build()
        names, skill_names, allowed = self._candidates(ctx.candidates)
        if not skill_names:
            raise ConfigError(f"skills router {self.label!r}: none of the candidates {names[:5]} is a skill of its "
                              "registry; route to skill targets (SkillRegistry.targets()) or give the matching skills")
        rows, scores, _ = self._rank(ctx.query, qvec, allowed)
        top = float(scores[0]) if len(scores) else None
        by_name = {index.names[int(r)]: float(s) for r, s in zip(rows, scores, strict=False)}
        floor = min(FLOOR, min(by_name.values(), default=0.0) - 1.0)
        cand_scores = {n: by_name.get(n, floor) for n in names}
        chosen = [index.names[int(r)] for r in rows[:self.k]]
        meta = {"skills": chosen, "skill_scores": [by_name[n] for n in chosen], "shortlist": len(rows),
                "abstained": False}
        if self.default is not None and self.default in cand_scores and self.default not in index.position:
            cand_scores[self.default] = self.abstain_threshold if self.abstain_threshold is not None else floor
        if self.abstain_threshold is not None and self._abstains(top):
            if self.default is None or self.default not in cand_scores:
                raise ConfigError(f"skills router {self.label!r} abstained (best {top}) but has no 'default' "
                                  f"candidate to route to; set default to one of {names[:5]}")
            meta["abstained"] = True
            return Decision(targets=(self.default,), scores=cand_scores, router=self.label, metadata=meta,
                            rationale=f"no skill above the abstain threshold {self.abstain_threshold:.3f} "
                                      f"(best {top if top is not None else float('nan'):.3f}); default")
        return self.decide(cand_scores, k=self.route_k, metadata=meta,
                           rationale=f"top skills: {', '.join(chosen[:3])}")

    def route(self, ctx: RouteContext) -> Decision:
        return self._decide(ctx, self.embedder.embed_one(ctx.query))

    def route_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        qvecs = self.embedder.embed([c.query for c in contexts])
        return [self._decide(c, q) for c, q in zip(contexts, qvecs, strict=False)]

    # ---- training ----------------------------------------------------------------------------
    def fit(self, queries: Sequence[str], gold: Sequence[Sequence[str]], *, validation_fraction: float = 0.2,
            seed: int = 0) -> dict[str, Any]:
        """Fit the reranker on training queries (gold skill names; ``[]`` = no skill fits) and choose the
        abstain threshold on a held-out validation slice of them (max F1 of abstaining; only when some
        training queries have no gold). Returns what was fitted."""
        if len(queries) != len(gold):
            raise ConfigError(f"skills router fit: {len(queries)} queries but {len(gold)} gold lists")
        index = self.build()
        unknown = sorted({g for gs in gold for g in gs if g not in index.position})
        if unknown:
            raise SkillError(f"skills router fit: gold skills not in the registry: {unknown[:5]}")
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(queries))
        n_val = int(round(len(queries) * validation_fraction)) if any(not g for g in gold) else 0
        val_idx, fit_idx = order[:n_val], order[n_val:]
        qvecs = self.embedder.embed(list(queries))
        saved, self.reranker = self.reranker, None
        X_parts, y_parts = [], []
        for i in fit_idx:
            if not gold[i]:
                continue
            rows, _, _ = self._rank(queries[i], qvecs[i], None)
            X_parts.append(self._features(queries[i], qvecs[i], rows))
            y_parts.append(np.isin([index.names[int(r)] for r in rows], list(gold[i])).astype(int))
        if not X_parts:
            self.reranker = saved
            raise SkillError("skills router fit: no training query has a gold skill")
        self.reranker = FusionReranker.fit(np.vstack(X_parts), np.concatenate(y_parts))
        fitted: dict[str, Any] = {"rerank_queries": len(X_parts), "validation_queries": int(n_val)}
        if n_val:
            tops = []
            for i in val_idx:
                _, scores, _ = self._rank(queries[i], qvecs[i], None)
                tops.append(float(scores[0]) if len(scores) else -np.inf)
            irrelevant = np.array([not gold[i] for i in val_idx])
            self.abstain_threshold, f1 = _best_abstain_threshold(np.array(tops), irrelevant)
            fitted.update(abstain_threshold=self.abstain_threshold, validation_abstain_f1=f1)
        return fitted

    # ---- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """A self-contained directory: skills.jsonl.gz, the index, reranker.json, router.json."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with gzip.open(path / "skills.jsonl.gz", "wt", encoding="utf-8") as f:
            for s in self.registry:
                f.write(json.dumps({"name": s.name, "description": s.description, "body": s.body,
                                    "parameters": dict(s.parameters), "examples": list(s.examples),
                                    "tags": list(s.tags), "cost_usd": s.cost_usd, "latency_ms": s.latency_ms,
                                    "source": s.source}, default=str) + "\n")
        self.build().save(path / "index")
        if self.reranker is not None:
            self.reranker.save(path / "reranker.json")
        (path / "router.json").write_text(json.dumps({
            "format": 1, "k": self.k, "shortlist": self.shortlist, "route_k": self.route_k, "default": self.default,
            "lexical_weight": self.lexical_weight, "views": list(self.views), "rerank": self.use_rerank,
            "retrieval_view": self.retrieval_view,
            "abstain_threshold": self.abstain_threshold}), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, *, skills: Any = None, embedder: Any = None, label: str | None = None) -> SkillRouter:
        """Load a saved router; ``skills`` (optional) re-binds callables by name."""
        path = Path(path)
        try:
            cfg = json.loads((path / "router.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SkillError(f"{path}: not a saved skills router (router.json missing)") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SkillError(f"{path / 'router.json'}: unreadable JSON; re-save the router") from None
        if not isinstance(cfg, Mapping) or cfg.get("format") != 1:
            raise SkillError(f"{path / 'router.json'}: field 'format' must be 1")
        stored = []
        with gzip.open(path / "skills.jsonl.gz", "rt", encoding="utf-8") as f:
            for d in map(json.loads, f):
                stored.append(Skill(name=d["name"], description=d["description"], body=d.get("body", ""),
                                    parameters=d.get("parameters", {}), examples=tuple(d.get("examples", ())),
                                    tags=tuple(d.get("tags", ())), cost_usd=d.get("cost_usd"),
                                    latency_ms=d.get("latency_ms"), source=d.get("source", "")))
        if skills is not None:
            bound = {s.name: s for s in _as_registry(skills)}
            stored = [bound.get(s.name, s) for s in stored]
        router = cls(stored, index=path / "index", k=cfg["k"], shortlist=cfg["shortlist"], route_k=cfg["route_k"],
                     default=cfg.get("default"), lexical_weight=cfg.get("lexical_weight", 0.5),
                     views=tuple(cfg.get("views", VIEWS)), abstain_threshold=cfg.get("abstain_threshold"),
                     rerank=cfg.get("rerank", True), retrieval_view=cfg.get("retrieval_view", "full"),
                     embedder=embedder, label=label)
        if (path / "reranker.json").exists():
            try:
                data = json.loads((path / "reranker.json").read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise SkillError(f"{path / 'reranker.json'}: unreadable JSON; refit the router") from None
            router.reranker = FusionReranker.from_json(data, str(path / "reranker.json"))
        return router


def _best_abstain_threshold(tops: np.ndarray, irrelevant: np.ndarray) -> tuple[float | None, float]:
    """Threshold on the top score maximising the F1 of abstaining (abstain when top < threshold)."""
    if not irrelevant.any():
        return None, 0.0
    best_t, best_f1 = None, -1.0
    for t in np.unique(np.concatenate([tops, [np.inf]])):
        abst = tops < t
        tp = int((abst & irrelevant).sum())
        if tp == 0:
            continue
        prec, rec = tp / int(abst.sum()), tp / int(irrelevant.sum())
        f1 = 2 * prec * rec / (prec + rec)
        if f1 > best_f1:
            best_t, best_f1 = float(t), f1
    return best_t, float(best_f1)
