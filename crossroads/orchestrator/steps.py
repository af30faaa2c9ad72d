"""The functions LangGraph runs: target nodes and routed-edge path functions.

Each is a pair (sync, async) wrapped into one LangGraph runnable, so a compiled flow supports both
``invoke`` and ``ainvoke``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Send

from ..agents.targets import Target
from ..errors import RoutingError, StepLimitError
from ..routers.base import Router
from ..tracing.recorder import NullRecorder, Recorder
from ..tracing.records import CallRecord, DecisionRecord, EventRecord, StepRecord
from ..types import END, Decision, Message, RouteContext, TargetInfo, TargetRequest, TargetResult
from .state import BRANCH_KEY, RESET_BRANCHES

try:  # the runnable LangGraph itself wraps plain functions in (no callback overhead)
    from langgraph._internal._runnable import RunnableCallable as _Runnable

    def _runnable(name: str, func: Any, afunc: Any) -> Any:
        return _Runnable(func, afunc, name=name, trace=False)
except ImportError:  # pragma: no cover - public fallback if LangGraph moves it
    from langchain_core.runnables import RunnableLambda

    def _runnable(name: str, func: Any, afunc: Any) -> Any:
        return RunnableLambda(func, afunc=afunc, name=name)

__all__ = ["make_node", "make_path"]


class MessageView(Sequence[Message]):
    """A lazy, read-only view of the state's message dicts as :class:`Message` values."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Sequence[Mapping[str, Any]]) -> None:
        self._raw = raw

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [Message(**m) for m in self._raw[i]]
        return Message(**self._raw[i])


class LazyHealth(Mapping[str, Any]):
    """Health snapshots computed only for the candidates a router actually asks about."""

    __slots__ = ("_targets",)

    def __init__(self, targets: Mapping[str, Target]) -> None:
        self._targets = targets

    def __getitem__(self, name: str) -> Any:
        return self._targets[name].health_snapshot()

    def __iter__(self) -> Any:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


def latest_text(state: Mapping[str, Any]) -> str:
    """The most recent output, or the run input before any node ran."""
    out = state.get("output")
    return out if out is not None else state.get("input", "")


def _graph_step(config: Mapping[str, Any] | None) -> int:
    return int(((config or {}).get("metadata") or {}).get("langgraph_step", 0))


def make_node(target: Target, recorder: Recorder, *, max_steps: int, is_merge: bool = False) -> Any:
    """The LangGraph node that runs ``target`` and records its step and calls."""
    name = target.name
    kind = target.kind.value
    tracing = not isinstance(recorder, NullRecorder)

    def request_of(state: Mapping[str, Any]) -> TargetRequest:
        steps = state.get("steps", 0)
        if steps >= max_steps:
            raise StepLimitError(
                f"run exceeded max_steps={max_steps} before node {name!r}; raise the flow's max_steps "
                "or give its loop a router that can choose END"
            )
        return TargetRequest(
            text=latest_text(state),
            input=state.get("input", ""),
            messages=MessageView(state.get("messages") or ()),  # type: ignore[arg-type]
            branch_outputs=tuple(state.get("branches") or ()) if is_merge else (),
            state=state,
            metadata=state.get("metadata") or {},
        )

    def update_of(state: Mapping[str, Any], result: TargetResult) -> dict[str, Any]:
        update: dict[str, Any] = {
            "messages": [{"role": "assistant", "content": result.output, "name": name}],
            "output": result.output,
            "steps": 1,
            "cost_usd": result.cost_usd,
        }
        branch = state.get(BRANCH_KEY)
        if branch is not None:
            update["branches"] = [{"target": name, "output": result.output, **branch}]
        elif is_merge:
            update["branches"] = RESET_BRANCHES
        return update

    def record(state: Mapping[str, Any], config: Any, started: float, request: TargetRequest,
               result: TargetResult | None, error: BaseException | None) -> None:
        run_id = state.get("run_id")
        if not run_id or not tracing:
            return
        step = StepRecord(
            run_id=run_id, node=name, kind=kind, graph_step=_graph_step(config),
            started_at=started, ended_at=time.time(),
            status="failed" if error else "succeeded",
            input_summary=request.text, output_summary=result.output if result else "",
            cost_usd=result.cost_usd if result else 0.0,
            error=f"{type(error).__name__}: {error}" if error else None,
        )
        recorder.record(step)
        for call in (result.calls if result is not None else getattr(error, "calls", ())):  # failed attempts too
            recorder.record(CallRecord(run_id=run_id, step_id=step.step_id, usage=call))
        for ev in (result.events if result is not None else getattr(error, "events", ())):
            recorder.record(EventRecord(kind=ev.kind, run_id=run_id, step_id=step.step_id, target=ev.target,
                                        detail=dict(ev.detail)))

    def node(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        request = request_of(state)
        started = time.time()
        try:
            result = target.invoke(request)
        except Exception as exc:
            record(state, config, started, request, None, exc)
            raise
        record(state, config, started, request, result, None)
        return update_of(state, result)

    async def anode(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        request = request_of(state)
        started = time.time()
        try:
            result = await target.ainvoke(request)
        except Exception as exc:
            record(state, config, started, request, None, exc)
            raise
        record(state, config, started, request, result, None)
        return update_of(state, result)

    return _runnable(name, node, anode)


def make_path(
    source: str,
    router: Router,
    candidates: Sequence[TargetInfo | str],
    health_of: Mapping[str, Target],
    recorder: Recorder,
    *,
    fan_out: bool,
    max_steps: int,
    as_node: bool = False,
) -> Any:
    """The conditional-edge function that asks ``router`` and returns node name(s) or ``Send``s.

    With ``as_node`` it is instead a node that returns ``Command(goto=...)`` (for interactive routers).
    """
    infos = tuple(c if isinstance(c, TargetInfo) else TargetInfo(name=c, description="end the run") for c in candidates)
    names = tuple(i.name for i in infos)
    health = LazyHealth(health_of)
    tracing = not isinstance(recorder, NullRecorder)

    def context_of(state: Mapping[str, Any]) -> RouteContext:
        return RouteContext(
            query=latest_text(state),
            candidates=infos,
            input=state.get("input", ""),
            messages=MessageView(state.get("messages") or ()),  # type: ignore[arg-type]
            health=health,
            step=state.get("steps", 0),
            budget_spent_usd=state.get("cost_usd", 0.0),
            source=source,
            run_id=state.get("run_id"),
            metadata=state.get("metadata") or {},
        )

    def finish(state: Mapping[str, Any], ctx: RouteContext, decision: Any, started: float) -> Any:
        run_id = state.get("run_id")
        if not isinstance(decision, Decision):
            _fail(run_id, RoutingError(
                f"router {router.label!r} returned {type(decision).__name__}, not a Decision",
                router=router.label, candidates=names))
        if decision.latency_ms == 0.0:
            decision = dataclasses.replace(decision, latency_ms=(time.perf_counter() - started) * 1e3)
        if not decision.router:
            decision = dataclasses.replace(decision, router=router.label)
        try:
            decision.validate(names)
            if len(decision.targets) > 1 and not fan_out:
                raise RoutingError(
                    f"router {decision.router!r} chose {len(decision.targets)} targets "
                    f"({', '.join(decision.targets)}) but the route from {source!r} has no merge node; "
                    "pass merge=... to fan out",
                    router=decision.router, candidates=names)
        except RoutingError as exc:
            _fail(run_id, exc, decision)
        if run_id and tracing:
            recorder.record(DecisionRecord(run_id=run_id, source=source, decision=decision,
                                           query=ctx.query, step_index=ctx.step))
        if state.get("steps", 0) >= max_steps and any(t != END for t in decision.targets):
            raise StepLimitError(
                f"run reached max_steps={max_steps} at the route from {source!r}; raise max_steps or "
                "let the router choose END"
            )
        if not fan_out:
            return decision.targets[0]
        base = {k: v for k, v in state.items() if k != BRANCH_KEY}
        return [
            Send(t, {**base, BRANCH_KEY: {"decision_id": decision.decision_id, "source": source}})
            if t != END else END
            for t in decision.targets
        ]

    def _fail(run_id: str | None, exc: RoutingError, decision: Decision | None = None) -> None:
        recorder.record(EventRecord(
            kind="routing_error", run_id=run_id, decision_id=decision.decision_id if decision else None,
            target=exc.target,
            detail={"router": exc.router, "source": source, "candidates": list(names), "message": str(exc)},
        ))
        raise exc

    def path(state: dict[str, Any]) -> Any:
        ctx = context_of(state)
        started = time.perf_counter()
        return finish(state, ctx, router.route(ctx), started)

    async def apath(state: dict[str, Any]) -> Any:
        ctx = context_of(state)
        started = time.perf_counter()
        return finish(state, ctx, await router.aroute(ctx), started)

    if not as_node:
        return _runnable(f"route:{source}", path, apath)

    # interactive routers decide inside a node of their own (interrupts need a node context)
    def decide(state: dict[str, Any]) -> Command:
        return Command(goto=path(state))

    async def adecide(state: dict[str, Any]) -> Command:
        return Command(goto=await apath(state))

    return _runnable(f"decide:{source}", decide, adecide)
