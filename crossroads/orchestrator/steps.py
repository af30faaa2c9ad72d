"""The nodes LangGraph runs: target nodes and decision nodes.

Each node is a small LangChain ``Runnable`` with a sync and an async body, so a compiled flow
supports both ``invoke`` and ``ainvoke`` (only LangGraph's public API is used).

Every routed edge is a decision node of its own (``<source>_decide``): the router runs inside a
node, so a router that raises leaves the thread pending at that node and ``resume()`` re-runs the
decision and then the chosen target. The decision is written to the graph state (``decisions``) as
well as to the trace, so ``get_state_history`` shows why a branch was taken.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.types import Command, Send
from pydantic import BaseModel

from ..agents.lc import from_lc_message, to_lc_message
from ..agents.targets import Target
from ..errors import BudgetExceededError, RoutingError, StepLimitError
from ..routers.base import Router
from ..tracing.recorder import NullRecorder, Recorder
from ..tracing.records import CallRecord, DecisionRecord, EventRecord, StepRecord
from ..types import END, Decision, Message, RouteContext, TargetInfo, TargetRequest, TargetResult
from .state import BRANCH_KEY, RESET_BRANCHES
from .streaming import STREAM_EVENT_KEY

__all__ = ["STREAM_FLAG", "decision_summary", "make_decide", "make_node"]

STREAM_FLAG = "crossroads_stream_tokens"
"""``configurable`` key set by ``astream_chunks``: model targets then stream their tokens."""


class MessageView(Sequence[Message]):
    """A lazy, read-only view of the state's LangChain messages as crossroads :class:`Message` values."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Sequence[Any]) -> None:
        self._raw = raw

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [from_lc_message(m) for m in self._raw[i]]
        return from_lc_message(self._raw[i])


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


class _Node(Runnable[Any, Any]):
    """A LangGraph node with a sync and an async body (no callback overhead)."""

    def __init__(self, name: str, func: Callable[..., Any], afunc: Callable[..., Any]) -> None:
        self.name = name
        self._func = func
        self._afunc = afunc

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._func(_as_dict(input), config or {})

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._afunc(_as_dict(input), config or {})


def _as_dict(state: Any) -> Any:
    """A pydantic state (``FlowStateModel``) as the mapping the nodes read."""
    if isinstance(state, BaseModel):
        return {k: getattr(state, k) for k in type(state).model_fields}
    return state


def latest_text(state: Mapping[str, Any]) -> str:
    """The most recent output, or the run input before any node ran."""
    out = state.get("output")
    return out if out is not None else state.get("input", "")


def _graph_step(config: Mapping[str, Any] | None) -> int:
    return int(((config or {}).get("metadata") or {}).get("langgraph_step", 0))


def _streaming(config: Mapping[str, Any]) -> bool:
    return bool((config.get("configurable") or {}).get(STREAM_FLAG))


def _writer(config: Mapping[str, Any]) -> Callable[[Any], None] | None:
    if not _streaming(config):
        return None
    try:
        return get_stream_writer()
    except RuntimeError:  # outside a graph context
        return None


def decision_summary(decision: Decision, source: str) -> dict[str, Any]:
    """The decision as it is kept in the graph state (plain data, checkpoint-friendly)."""
    return {"decision_id": decision.decision_id, "router": decision.router, "source": source,
            "targets": list(decision.targets), "scores": {k: float(v) for k, v in decision.scores.items()},
            "rationale": decision.rationale, "cost_usd": float(decision.cost_usd)}


def make_node(target: Target, recorder: Recorder, *, max_steps: int, is_merge: bool = False,
              max_cost_usd: float | None = None) -> Any:
    """The LangGraph node that runs ``target`` and records its step, calls and events."""
    name = target.name
    kind = target.kind.value
    per_call = float(target.info.cost.per_call)
    tracing = not isinstance(recorder, NullRecorder)

    def request_of(state: Mapping[str, Any], on_token: Callable[[str], None] | None) -> TargetRequest:
        steps = state.get("steps", 0)
        if steps >= max_steps:
            raise StepLimitError(
                f"run exceeded max_steps={max_steps} before node {name!r}; raise the flow's max_steps "
                "or give its loop a router that can choose END"
            )
        spent = float(state.get("cost_usd", 0.0) or 0.0)
        # the known minimum price of this step (its per-call price) must fit in what is left
        if max_cost_usd is not None and (spent >= max_cost_usd or spent + per_call > max_cost_usd):
            raise BudgetExceededError(
                f"run spent ${spent:.6f} of its ${max_cost_usd:.6f} budget before node {name!r} "
                f"(which costs at least ${per_call:.6f} a call); raise Flow(max_cost_usd=...) or route to "
                "cheaper targets",
                spent_usd=spent, budget_usd=max_cost_usd)
        return TargetRequest(
            text=latest_text(state),
            input=state.get("input", ""),
            messages=MessageView(state.get("messages") or ()),  # type: ignore[arg-type]
            branch_outputs=tuple(state.get("branches") or ()) if is_merge else (),
            state=state,
            metadata=state.get("metadata") or {},
            on_token=on_token,
        )

    def update_of(state: Mapping[str, Any], result: TargetResult) -> dict[str, Any]:
        messages = [to_lc_message(m) for m in result.messages]
        asked = tuple(result.metadata.get("tool_calls") or ())  # a model's tool calls for the caller's tools
        messages.append(to_lc_message(Message(role="assistant", content=result.output, name=name, tool_calls=asked))
                        if asked else AIMessage(content=result.output, name=name))
        update: dict[str, Any] = {**result.update, "messages": messages, "output": result.output, "steps": 1,
                                  "cost_usd": result.cost_usd}
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
        calls = result.calls if result is not None else tuple(getattr(error, "calls", ()) or ())
        for call in calls:
            recorder.record(CallRecord(run_id=run_id, step_id=step.step_id, usage=call))
        for ev in (result.events if result is not None else getattr(error, "events", ())):
            recorder.record(EventRecord(kind=ev.kind, run_id=run_id, step_id=step.step_id, target=ev.target,
                                        detail=dict(ev.detail)))

    def streamer(state: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Any, list[bool]]:
        write = _writer(config)
        if write is None:
            return None, [False]
        sent = [False]
        branch = state.get(BRANCH_KEY) is not None

        def on_token(delta: str) -> None:
            if delta:
                sent[0] = True
                write({STREAM_EVENT_KEY: "token", "node": name, "delta": delta, "branch": branch,
                       "run_id": state.get("run_id")})

        return on_token, sent

    def after(state: Mapping[str, Any], config: Mapping[str, Any], result: TargetResult, on_token: Any,
              sent: list[bool]) -> None:
        if on_token is None:
            return
        if not sent[0]:
            on_token(result.output)  # a target that does not stream: its whole output is one delta
        write = _writer(config)
        if write is not None:
            write({STREAM_EVENT_KEY: "usage", "node": name, "calls": list(result.calls)})

    def node(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        on_token, sent = streamer(state, config)
        request = request_of(state, on_token)
        started = time.time()
        try:
            result = target.invoke(request)
        except Exception as exc:
            record(state, config, started, request, None, exc)
            raise
        record(state, config, started, request, result, None)
        after(state, config, result, on_token, sent)
        return update_of(state, result)

    async def anode(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        on_token, sent = streamer(state, config)
        request = request_of(state, on_token)
        started = time.time()
        try:
            result = await target.ainvoke(request)
        except Exception as exc:
            record(state, config, started, request, None, exc)
            raise
        record(state, config, started, request, result, None)
        after(state, config, result, on_token, sent)
        return update_of(state, result)

    return _Node(name, node, anode)


def make_decide(
    source: str,
    router: Router,
    candidates: Sequence[TargetInfo | str],
    health_of: Mapping[str, Target],
    recorder: Recorder,
    *,
    fan_out: bool,
    max_steps: int,
    node_name: str,
) -> Any:
    """The decision node of the routed edge from ``source``: asks ``router`` and returns a
    ``Command`` that records the decision in the state and goes to the chosen node(s)."""
    infos = tuple(c if isinstance(c, TargetInfo) else TargetInfo(name=c, description="end the run") for c in candidates)
    names = tuple(i.name for i in infos)
    health = LazyHealth(health_of)
    tracing = not isinstance(recorder, NullRecorder)
    side_records = getattr(router, "trace_records", None)

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

    def _fail(run_id: str | None, exc: RoutingError, decision: Decision | None = None) -> None:
        recorder.record(EventRecord(
            kind="routing_error", run_id=run_id, decision_id=decision.decision_id if decision else None,
            target=exc.target,
            detail={"router": exc.router, "source": source, "candidates": list(names), "message": str(exc)},
        ))
        raise exc

    def finish(state: Mapping[str, Any], config: Mapping[str, Any], ctx: RouteContext, decision: Any,
               started: float) -> Command:
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
            if side_records is not None:  # an LLM router's own calls, routing errors and sub-decisions
                for rec in side_records(decision, run_id=run_id, source=source):
                    recorder.record(rec)
        if state.get("steps", 0) >= max_steps and any(t != END for t in decision.targets):
            raise StepLimitError(
                f"run reached max_steps={max_steps} at the route from {source!r}; raise max_steps or "
                "let the router choose END"
            )
        summary = decision_summary(decision, source)
        write = _writer(config)
        if write is not None:
            write({STREAM_EVENT_KEY: "decision", "node": node_name, "decision": summary, "run_id": run_id})
        update = {"decisions": [summary], "cost_usd": float(decision.cost_usd)}
        if not fan_out:
            return Command(goto=decision.targets[0], update=update)
        base = {k: v for k, v in state.items() if k != BRANCH_KEY}
        goto = [
            Send(t, {**base, BRANCH_KEY: {"decision_id": decision.decision_id, "source": source}})
            if t != END else END
            for t in decision.targets
        ]
        return Command(goto=goto, update=update)

    def decide(state: dict[str, Any], config: RunnableConfig) -> Command:
        ctx = context_of(state)
        started = time.perf_counter()
        return finish(state, config, ctx, router.route(ctx), started)

    async def adecide(state: dict[str, Any], config: RunnableConfig) -> Command:
        ctx = context_of(state)
        started = time.perf_counter()
        return finish(state, config, ctx, await router.aroute(ctx), started)

    return _Node(node_name, decide, adecide)
