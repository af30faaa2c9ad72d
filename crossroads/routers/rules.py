"""Signal rules: keyword / regex / metadata / length predicates combined with all / any / not.

Like vLLM Semantic Router's signal rules, each rule names the target(s) it routes to; the first
matching rule wins and ``default`` catches the rest.

Example (YAML)::

    type: rules
    params:
      rules:
        - name: billing
          when: {any: [{keyword: [refund, invoice]}, {regex: "charged? twice"}]}
          route: billing
        - when: {all: [{metadata: {tier: gold}}, {min_length: 200}]}
          route: [tech, billing]
      default: general
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError, RoutingError
from ..types import Decision, RouteContext
from .base import Router
from .registry import register_router

__all__ = ["RulesRouter"]

Predicate = Callable[[RouteContext], "str | None"]
"""Returns evidence text when it matches, ``None`` otherwise."""

_LEAVES = ("keyword", "regex", "metadata", "min_length", "max_length")
_COMBINATORS = ("all", "any", "not")


def compile_predicate(spec: Any, where: str = "when") -> Predicate:
    """Compile a predicate spec (a one-key mapping) into a function; errors name the bad path."""
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(
            f"rules: {where} must be a mapping with exactly one key of "
            f"{', '.join(_LEAVES + _COMBINATORS)}; got {spec!r}"
        )
    (op, arg), = spec.items()
    if op == "keyword":
        words = [arg] if isinstance(arg, str) else list(arg)
        if not words or not all(isinstance(w, str) and w for w in words):
            raise ConfigError(f"rules: {where}.keyword must be a word or a list of words")
        pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)

        def keyword(ctx: RouteContext) -> str | None:
            m = pattern.search(ctx.query)
            return f"keyword {m.group(1).lower()!r}" if m else None

        return keyword
    if op == "regex":
        try:
            rx = re.compile(str(arg), re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"rules: {where}.regex {arg!r} is not a valid regular expression: {exc}") from exc

        def regex(ctx: RouteContext) -> str | None:
            m = rx.search(ctx.query)
            return f"regex '{rx.pattern}' matched {m.group(0)!r}" if m else None

        return regex
    if op == "metadata":
        if not isinstance(arg, Mapping) or not arg:
            raise ConfigError(f"rules: {where}.metadata must map keys to a value or a list of values")
        wanted = {k: (tuple(v) if isinstance(v, (list, tuple)) else (v,)) for k, v in arg.items()}

        def metadata(ctx: RouteContext) -> str | None:
            for key, allowed in wanted.items():
                if ctx.metadata.get(key) not in allowed:
                    return None
            return "metadata " + ", ".join(f"{k}={ctx.metadata.get(k)!r}" for k in wanted)

        return metadata
    if op in ("min_length", "max_length"):
        if not isinstance(arg, int) or arg < 0:
            raise ConfigError(f"rules: {where}.{op} must be a non-negative integer, got {arg!r}")
        if op == "min_length":
            return lambda ctx: f"length {len(ctx.query)} >= {arg}" if len(ctx.query) >= arg else None
        return lambda ctx: f"length {len(ctx.query)} <= {arg}" if len(ctx.query) <= arg else None
    if op in ("all", "any"):
        if not isinstance(arg, Sequence) or isinstance(arg, str) or not arg:
            raise ConfigError(f"rules: {where}.{op} must be a non-empty list of predicates")
        parts = [compile_predicate(p, f"{where}.{op}[{i}]") for i, p in enumerate(arg)]
        if op == "all":
            def all_of(ctx: RouteContext) -> str | None:
                evidence = []
                for p in parts:
                    e = p(ctx)
                    if e is None:
                        return None
                    evidence.append(e)
                return " and ".join(evidence)
            return all_of

        def any_of(ctx: RouteContext) -> str | None:
            for p in parts:
                e = p(ctx)
                if e is not None:
                    return e
            return None
        return any_of
    if op == "not":
        inner = compile_predicate(arg, f"{where}.not")
        return lambda ctx: None if inner(ctx) is not None else "not matched"
    raise ConfigError(
        f"rules: unknown predicate {op!r} at {where}; allowed: {', '.join(_LEAVES + _COMBINATORS)}"
    )


@register_router()
class RulesRouter(Router):
    """First matching rule wins; ``default`` (if set) catches everything else."""

    name = "rules"
    blocking = False  # decides in microseconds: no worker thread in async runs

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]],
        default: str | list[str] | None = None,
        *,
        label: str | None = None,
    ) -> None:
        super().__init__(label=label)
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            raise ConfigError("rules router: 'rules' must be a list of {when, route} mappings")
        self._rules: list[tuple[str, Predicate, tuple[str, ...]]] = []
        for i, rule in enumerate(rules):
            if not isinstance(rule, Mapping) or "when" not in rule or "route" not in rule:
                raise ConfigError(f"rules router: rules[{i}] needs 'when' and 'route' keys; got {rule!r}")
            extra = set(rule) - {"name", "when", "route"}
            if extra:
                raise ConfigError(f"rules router: rules[{i}] has unknown keys {sorted(extra)}; allowed: name, when, route")
            route = rule["route"]
            targets = (route,) if isinstance(route, str) else tuple(route)
            if not targets:
                raise ConfigError(f"rules router: rules[{i}].route names no target")
            name = str(rule.get("name") or f"rule{i}")
            self._rules.append((name, compile_predicate(rule["when"], f"rules[{i}].when"), targets))
        self.default = (default,) if isinstance(default, str) else (tuple(default) if default else ())

    def referenced_targets(self) -> set[str]:
        """Every target a rule or the default may route to (checked against the flow at compile time)."""
        names = {t for _, _, ts in self._rules for t in ts}
        return names | set(self.default)

    def route(self, ctx: RouteContext) -> Decision:
        matched: list[tuple[str, str, tuple[str, ...]]] = []
        for name, pred, targets in self._rules:
            evidence = pred(ctx)
            if evidence is not None:
                matched.append((name, evidence, targets))
        if matched:
            rule, evidence, chosen = matched[0]
            rationale = f"rule {rule!r} matched: {evidence}"
        elif self.default:
            rule, chosen = "default", self.default
            rationale = "no rule matched; default"
        else:
            raise RoutingError(
                f"rules router {self.label!r}: no rule matched {ctx.query[:80]!r} and no default is set; "
                "add a 'default' target",
                router=self.label,
                candidates=ctx.candidate_names,
            )
        also = {t for _, _, ts in matched[1:] for t in ts}
        scores = {c.name: 1.0 if c.name in chosen else (0.5 if c.name in also else 0.0) for c in ctx.candidates}
        return Decision(
            targets=chosen, scores=scores, rationale=rationale, router=self.label,
            metadata={"rule": rule, "matched_rules": [m[0] for m in matched]},
        )
