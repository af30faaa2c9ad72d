"""A compiled flow: a LangGraph graph plus run bookkeeping (run ids, run records, resume, feedback,
streaming, checkpoints)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage
from langgraph.errors import GraphRecursionError
from langgraph.graph import StateGraph
from langgraph.types import Command

from ..agents.targets import Target
from ..errors import FeedbackError, FlowError, StepLimitError, ThreadFinishedError
from ..routers.base import Router
from ..tracing.recorder import NullRecorder, Recorder, SQLRecorder
from ..tracing.records import EventRecord, RunEnd, RunStart
from ..types import END, START, CallUsage, Feedback, TargetInfo
from .checkpoint import CheckpointSerializer, checkpoint_path_for, open_async_saver, open_sync_saver
from .inputs import DEFAULT_MAX_INPUT_CHARS, validate_input
from .merge import MERGE_STRATEGIES, merge_target
from .state import RESET, RESET_BRANCHES, check_state_schema
from .steps import STREAM_FLAG, make_decide, make_node
from .streaming import STREAM_EVENT_KEY, StreamChunk, StreamUsage

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["CompiledFlow", "RunDecision", "RunResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDecision:
    """One routing decision of a run, as kept in the run's state (enough to send feedback)."""

    decision_id: str
    router: str
    source: str
    targets: tuple[str, ...]
    scores: Mapping[str, float] = field(default_factory=dict)
    rationale: str = ""
    cost_usd: float = 0.0

    @property
    def chosen(self) -> tuple[str, ...]:
        """The chosen target(s) (same as ``targets``)."""
        return self.targets

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> RunDecision:
        """From the dict stored in ``state["decisions"]``."""
        return cls(decision_id=d["decision_id"], router=d["router"], source=d["source"],
                   targets=tuple(d["targets"]), scores=dict(d.get("scores") or {}),
                   rationale=d.get("rationale", ""), cost_usd=float(d.get("cost_usd", 0.0)))


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """The outcome of one run."""

    run_id: str
    thread_id: str
    output: str | None
    status: str
    """``succeeded`` or ``interrupted`` (waiting for :meth:`CompiledFlow.resume`)."""
    state: Mapping[str, Any] = field(default_factory=dict)
    interrupts: tuple[Any, ...] = ()
    decisions: tuple[RunDecision, ...] = ()
    """The run's routing decisions in order: feed ``decision_id`` back with :meth:`CompiledFlow.feedback`."""

    @property
    def cost_usd(self) -> float:
        """What the run cost: its target calls plus its routers' decisions
        (:func:`crossroads.types.run_cost`, the same figure ``trace list``/``show`` report)."""
        return float(self.state.get("cost_usd", 0.0))

    @property
    def steps(self) -> int:
        """Number of target node executions in this run."""
        return int(self.state.get("steps", 0))


class CompiledFlow:
    """A runnable flow. ``graph`` is the LangGraph ``CompiledStateGraph`` (sync checkpointer); graph
    methods such as ``get_graph``, ``get_state`` and ``get_state_history`` are forwarded to it."""

    def __init__(self, name: str, graph: Any, recorder: Recorder, routers: Mapping[str, Router], max_steps: int,
                 *, builder: Any = None, compile_kwargs: Mapping[str, Any] | None = None,
                 checkpoint_path: Path | None = None, serde: CheckpointSerializer | None = None,
                 max_input_chars: int | None = DEFAULT_MAX_INPUT_CHARS) -> None:
        self.name = name
        self.graph = graph
        self.recorder = recorder
        self.routers = dict(routers)
        self.max_steps = max_steps
        self.max_input_chars = max_input_chars
        self.checkpoint_path = checkpoint_path
        """The SQLite file holding this flow's checkpoints (``None`` unless a file checkpointer)."""
        self._builder = builder
        self._compile_kwargs = dict(compile_kwargs or {})
        self._serde = serde
        self._async: dict[Any, asyncio.Future[tuple[Any, Any]]] = {}

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, flow: Flow, *, recorder: Any, checkpointer: Any, interrupt_before: tuple[str, ...]) -> CompiledFlow:
        rec: Recorder
        if recorder is None:
            rec = NullRecorder()
        elif isinstance(recorder, (str, Path)):
            rec = SQLRecorder(str(recorder))
        else:
            rec = recorder
        graph: Any = StateGraph(check_state_schema(getattr(flow, "state_schema", None)))
        nodes: dict[str, Target] = dict(flow.nodes)
        merge_nodes: dict[str, str] = {}
        for r in flow.routes.values():
            if r.merge is None:
                continue
            if r.merge in flow.nodes:
                merge_nodes[r.source] = r.merge
            elif r.merge in MERGE_STRATEGIES:
                mname = "merge" if r.source == START else f"{r.source}_merge"
                nodes[mname] = merge_target(r.merge, mname)
                merge_nodes[r.source] = mname
            else:
                from ..errors import UnknownNameError

                raise UnknownNameError("merge node or strategy", r.merge, [*flow.nodes, *MERGE_STRATEGIES])
        merge_set = set(merge_nodes.values())
        max_cost = getattr(flow, "max_cost_usd", None)
        for name, target in nodes.items():
            graph.add_node(name, make_node(target, rec, max_steps=flow.max_steps, is_merge=name in merge_set,
                                           max_cost_usd=max_cost))

        # onward edges: explicit, else a route's merge node, else END
        onward: dict[str, str] = {}
        for r in flow.routes.values():
            for c in r.candidates:
                if c != END and c not in flow.edges and c not in flow.routes:
                    dest = merge_nodes.get(r.source, END)
                    if onward.get(c, dest) != dest:
                        raise FlowError(
                            f"node {c!r} is a candidate of two routes that merge into different nodes; "
                            f"give it an explicit edge"
                        )
                    onward[c] = dest
        for src, dst in flow.edges.items():
            graph.add_edge(src, dst)
        routers: dict[str, Router] = {}
        for r in flow.routes.values():
            other = routers.get(r.router.label)
            if other is not None and other is not r.router:
                raise FlowError(
                    f"flow {flow.name!r} has two different routers labelled {r.router.label!r}; feedback "
                    "is addressed by label, so give each router its own label=..."
                )
            routers[r.router.label] = r.router
            infos = [nodes[c].info if c != END else TargetInfo(name=END, description="end the run") for c in r.candidates]
            health = {c: nodes[c] for c in r.candidates if c != END}
            decide = f"{r.source.strip('_')}_decide"
            if decide in nodes:
                raise FlowError(f"node name {decide!r} is reserved for the decision node of the route from "
                                f"{r.source!r}; rename that node")
            # Routing decides in a node of its own: a router that raises leaves the thread pending at
            # this node, so resume() re-runs the decision and then the chosen target.
            graph.add_node(decide, make_decide(r.source, r.router, infos, health, rec,
                                               fan_out=r.source in merge_nodes, max_steps=flow.max_steps,
                                               node_name=decide),
                           destinations=tuple(r.candidates))
            graph.add_edge(r.source, decide)
        for name in nodes:
            if name in flow.edges or name in flow.routes:
                continue
            graph.add_edge(name, onward.get(name, END))
        if START not in flow.edges and START not in flow.routes:
            graph.add_edge(START, next(iter(flow.nodes)))

        path: Path | None = None
        serde: CheckpointSerializer | None = None
        saver: Any = checkpointer
        if checkpointer == "memory":
            from langgraph.checkpoint.memory import InMemorySaver

            saver = InMemorySaver()
        elif isinstance(checkpointer, (str, Path)):
            path = Path(checkpointer)
            trace_path = getattr(getattr(rec, "store", None), "path", None)
            if trace_path is not None and _same_file(path, Path(trace_path)):
                path = checkpoint_path_for(path)  # checkpoints never share the trace file
            serde = CheckpointSerializer.from_env(str(path))
            saver = open_sync_saver(path, serde)
        kwargs: dict[str, Any] = {"interrupt_before": list(interrupt_before) or None, "name": flow.name}
        compiled = graph.compile(checkpointer=saver, **kwargs)
        return cls(flow.name, compiled, rec, routers, flow.max_steps, builder=graph, compile_kwargs=kwargs,
                   checkpoint_path=path, serde=serde,
                   max_input_chars=getattr(flow, "max_input_chars", DEFAULT_MAX_INPUT_CHARS))

    @functools.cached_property
    def graph_mermaid(self) -> str | None:
        """LangGraph's Mermaid drawing of this flow's graph (``None`` if it cannot draw it); stored in each run's
        metadata as ``graph_mermaid`` so ``crossroads ui`` can show the whole graph with the path taken."""
        try:
            return str(self.__dict__["graph"].get_graph().draw_mermaid())
        except Exception:  # drawing is a nicety: never let it stop a run
            return None

    # -- delegation -----------------------------------------------------------------------------
    def __getattr__(self, item: str) -> Any:
        # forward LangGraph's API (get_graph, get_state, get_state_history, ...)
        return getattr(self.__dict__["graph"], item)

    async def _agraph(self) -> Any:
        """The graph for async runs: with a file checkpointer, one compiled on LangGraph's
        AsyncSqliteSaver bound to the running loop (the sync SqliteSaver has no async methods)."""
        if self.checkpoint_path is None:
            return self.graph
        loop = asyncio.get_running_loop()
        fut = self._async.get(loop)
        if fut is None:
            for old in [lp for lp in self._async if lp.is_closed()]:
                _stop_saver(self._async.pop(old))
            fut = loop.create_future()
            self._async[loop] = fut
            try:
                saver = await open_async_saver(self.checkpoint_path, self._serde or CheckpointSerializer.from_env(None))
                fut.set_result((self._builder.compile(checkpointer=saver, **self._compile_kwargs), saver))
            except BaseException as exc:
                del self._async[loop]
                fut.set_exception(exc)
                raise
        graph, _ = await asyncio.shield(fut)
        return graph

    # -- running --------------------------------------------------------------------------------
    def _config(self, thread_id: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
        cfg: dict[str, Any] = dict(config or {})
        conf = dict(cfg.get("configurable") or {})
        conf["thread_id"] = thread_id
        cfg["configurable"] = conf
        cfg.setdefault("recursion_limit", self.max_steps * 3 + 10)
        return cfg

    def _start(self, text: Any, thread_id: str | None, metadata: Mapping[str, Any] | None,
               config: Mapping[str, Any] | None,
               messages: Sequence[Any] | None = None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        text, replaced = validate_input(text, max_chars=self.max_input_chars)  # before anything runs or is written
        run_id = uuid.uuid4().hex
        thread = thread_id or run_id
        run_meta = dict(metadata or {})
        if self.graph_mermaid is not None:  # the whole graph, for the trace UI (computed once per compiled flow)
            run_meta.setdefault("graph_mermaid", self.graph_mermaid)
        self.recorder.record(RunStart(run_id=run_id, flow=self.name, thread_id=thread, input=text,
                                      metadata=run_meta))
        if replaced:
            self.recorder.record(EventRecord(kind="input_normalised", run_id=run_id,
                                             detail={"lone_surrogates_replaced": replaced}))
        # A new input starts a new turn of the thread: the per-run keys are reset (a thread reused
        # with a new input must not route on the previous run's output or inherit its step count and
        # spend); the conversation in ``messages`` is kept.
        payload = {"run_id": run_id, "input": text, "metadata": dict(metadata or {}), "output": None,
                   "steps": RESET, "cost_usd": RESET, "decisions": RESET_BRANCHES,
                   "branches": RESET_BRANCHES, "messages": [HumanMessage(content=text)]}
        if messages:  # the whole conversation to run on (e.g. a served chat request), the input its last user text
            from ..agents.lc import from_lc_message, to_lc_message

            convo = [from_lc_message(m) for m in messages]
            # the same checks as the input: the whole conversation within the size limit, valid Unicode
            validate_input("".join(m.content for m in convo), max_chars=self.max_input_chars)
            convo = [dataclasses.replace(m, content=validate_input(m.content, max_chars=None)[0]) for m in convo]
            payload["messages"] = [to_lc_message(m) for m in convo]
        return run_id, payload, self._config(thread, config)

    def _resume_check(self, thread_id: str, snapshot: Any) -> str:
        run_id = (snapshot.values or {}).get("run_id")
        if not run_id:
            raise FlowError(f"thread {thread_id!r} has no checkpoint to resume")
        if not snapshot.next and not any(getattr(t, "interrupts", ()) for t in snapshot.tasks or ()):
            raise ThreadFinishedError(
                f"thread {thread_id!r} has nothing to resume: its last run {run_id} finished; start a new "
                f"turn with invoke(text, thread_id={thread_id!r})"
            )
        self.recorder.record(RunEnd(run_id=run_id, status="running"))
        self.recorder.record(EventRecord(kind="resume", run_id=run_id, detail={"thread_id": thread_id,
                                                                                 "next": list(snapshot.next)}))
        return run_id

    def _finish(self, run_id: str, thread_id: str, final: Mapping[str, Any]) -> RunResult:
        interrupts = tuple(final.get("__interrupt__", ()))
        status = "interrupted" if interrupts else "succeeded"
        output = final.get("output")
        self.recorder.record(RunEnd(run_id=run_id, status=status, output=output))
        decisions = tuple(RunDecision.from_state(d) for d in final.get("decisions") or ())
        return RunResult(run_id=run_id, thread_id=thread_id, output=output, status=status,
                         state={k: v for k, v in final.items() if k != "__interrupt__"}, interrupts=interrupts,
                         decisions=decisions)

    @contextlib.contextmanager
    def _failure_recorded(self, run_id: str) -> Iterator[None]:
        """Record a failed run end for any exception (LangGraph's recursion error becomes StepLimitError)."""
        try:
            yield
        except GeneratorExit:  # a stream consumer stopped early: not a failure
            raise
        except BaseException as exc:
            err: BaseException = exc
            if isinstance(exc, GraphRecursionError):
                err = StepLimitError(f"run {run_id} exceeded the step limit ({self.max_steps} node runs): {exc}")
            self.recorder.record(RunEnd(run_id=run_id, status="failed", error=f"{type(err).__name__}: {err}"))
            if err is exc:
                raise
            raise err from exc

    def invoke(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
               config: Mapping[str, Any] | None = None) -> RunResult:
        """Run the flow on ``input`` to the end (or to an interrupt). On an existing thread, a new
        input starts a new turn (fresh output, steps and cost; the messages history is kept)."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        with self._failure_recorded(run_id):
            final = self.graph.invoke(payload, cfg)
        return self._finish(run_id, cfg["configurable"]["thread_id"], final)

    async def ainvoke(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                      config: Mapping[str, Any] | None = None, messages: Sequence[Any] | None = None) -> RunResult:
        """Async :meth:`invoke`; many runs can proceed concurrently. ``messages`` (crossroads or
        OpenAI-style messages) replaces the default conversation ``[user: input]``."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config, messages)
        with self._failure_recorded(run_id):
            graph = await self._agraph()
            final = await graph.ainvoke(payload, cfg)
        return self._finish(run_id, cfg["configurable"]["thread_id"], final)

    def resume(self, thread_id: str, value: Any = None, *, config: Mapping[str, Any] | None = None) -> RunResult:
        """Continue a thread after a failure (re-runs only the failed node: a failed routing
        decision is decided again) or an interrupt (``value`` answers it)."""
        cfg = self._config(thread_id, config)
        if self.graph.checkpointer is None:
            raise FlowError("resuming a thread needs a checkpointer: compile(checkpointer=...)")
        run_id = self._resume_check(thread_id, self.graph.get_state(cfg))
        payload: Any = Command(resume=value) if value is not None else None
        with self._failure_recorded(run_id):
            final = self.graph.invoke(payload, cfg)
        return self._finish(run_id, thread_id, final)

    async def aresume(self, thread_id: str, value: Any = None, *, config: Mapping[str, Any] | None = None) -> RunResult:
        """Async :meth:`resume`."""
        cfg = self._config(thread_id, config)
        if self.graph.checkpointer is None:
            raise FlowError("resuming a thread needs a checkpointer: compile(checkpointer=...)")
        graph = await self._agraph()
        run_id = self._resume_check(thread_id, await graph.aget_state(cfg))
        payload: Any = Command(resume=value) if value is not None else None
        with self._failure_recorded(run_id):
            final = await graph.ainvoke(payload, cfg)
        return self._finish(run_id, thread_id, final)

    @staticmethod
    def _modes(stream_mode: Any) -> tuple[list[str], bool]:
        single = isinstance(stream_mode, str)
        modes = [stream_mode] if single else list(stream_mode)
        return modes, single

    def stream(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
               stream_mode: Any = "updates", config: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Stream LangGraph items (``stream_mode``: one mode or a list) while recording the run,
        final output included."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        modes, single = self._modes(stream_mode)
        final: dict[str, Any] = {}
        with self._failure_recorded(run_id):
            for mode, chunk in self.graph.stream(payload, cfg, stream_mode=[*modes, "values"]):
                if mode == "values":
                    final = chunk
                if mode in modes:
                    yield chunk if single else (mode, chunk)
        self._finish(run_id, cfg["configurable"]["thread_id"], self._final(cfg, final))

    async def astream(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                      stream_mode: Any = "updates", config: Mapping[str, Any] | None = None) -> AsyncIterator[Any]:
        """Async :meth:`stream`."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        modes, single = self._modes(stream_mode)
        final: dict[str, Any] = {}
        with self._failure_recorded(run_id):
            graph = await self._agraph()
            async for mode, chunk in graph.astream(payload, cfg, stream_mode=[*modes, "values"]):
                if mode == "values":
                    final = chunk
                if mode in modes:
                    yield chunk if single else (mode, chunk)
        self._finish(run_id, cfg["configurable"]["thread_id"], await self._afinal(graph, cfg, final))

    def _final(self, cfg: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        final = dict(values)
        if self.graph.checkpointer is not None:
            snap = self.graph.get_state(cfg)
            interrupts = tuple(i for t in snap.tasks or () for i in getattr(t, "interrupts", ()))
            if interrupts:
                final["__interrupt__"] = interrupts
        return final

    async def _afinal(self, graph: Any, cfg: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        final = dict(values)
        if graph.checkpointer is not None:
            snap = await graph.aget_state(cfg)
            interrupts = tuple(i for t in snap.tasks or () for i in getattr(t, "interrupts", ()))
            if interrupts:
                final["__interrupt__"] = interrupts
        return final

    # -- token streaming ------------------------------------------------------------------------
    def _chunk_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        cfg["configurable"][STREAM_FLAG] = True
        return cfg

    @staticmethod
    def _chunk_of(run_id: str, item: Mapping[str, Any], calls: list[CallUsage]) -> StreamChunk | None:
        kind = item.get(STREAM_EVENT_KEY)
        if kind == "token":
            return StreamChunk(kind="token", run_id=run_id, delta=item["delta"], node=item["node"],
                               branch=bool(item.get("branch")))
        if kind == "decision":
            return StreamChunk(kind="decision", run_id=run_id, node=item["node"],
                               decision=RunDecision.from_state(item["decision"]))
        if kind == "usage":
            calls.extend(item.get("calls") or ())
        return None

    @staticmethod
    def _end(result: RunResult, calls: list[CallUsage]) -> StreamChunk:
        usage = StreamUsage(input_tokens=sum(c.input_tokens for c in calls),
                            output_tokens=sum(c.output_tokens for c in calls), cost_usd=result.cost_usd)
        return StreamChunk(kind="end", run_id=result.run_id, output=result.output, usage=usage, result=result)

    async def astream_chunks(self, input: str, *, thread_id: str | None = None,
                             metadata: Mapping[str, Any] | None = None,
                             config: Mapping[str, Any] | None = None,
                             messages: Sequence[Any] | None = None) -> AsyncIterator[StreamChunk]:
        """Run the flow and yield :class:`StreamChunk` items: decisions, token deltas as model targets
        produce them (their backend's ``astream``; other targets send their output as one delta), and
        a last ``end`` chunk with the output, usage and :class:`RunResult`."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config, messages)
        cfg = self._chunk_config(cfg)
        final: dict[str, Any] = {}
        calls: list[CallUsage] = []
        with self._failure_recorded(run_id):
            graph = await self._agraph()
            async for mode, item in graph.astream(payload, cfg, stream_mode=["custom", "values"]):
                if mode == "values":
                    final = item
                elif isinstance(item, Mapping) and STREAM_EVENT_KEY in item:
                    chunk = self._chunk_of(run_id, item, calls)
                    if chunk is not None:
                        yield chunk
        result = self._finish(run_id, cfg["configurable"]["thread_id"], await self._afinal(graph, cfg, final))
        yield self._end(result, calls)

    def stream_chunks(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                      config: Mapping[str, Any] | None = None) -> Iterator[StreamChunk]:
        """Sync :meth:`astream_chunks` (model targets use their backend's ``stream``)."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        cfg = self._chunk_config(cfg)
        final: dict[str, Any] = {}
        calls: list[CallUsage] = []
        with self._failure_recorded(run_id):
            for mode, item in self.graph.stream(payload, cfg, stream_mode=["custom", "values"]):
                if mode == "values":
                    final = item
                elif isinstance(item, Mapping) and STREAM_EVENT_KEY in item:
                    chunk = self._chunk_of(run_id, item, calls)
                    if chunk is not None:
                        yield chunk
        result = self._finish(run_id, cfg["configurable"]["thread_id"], self._final(cfg, final))
        yield self._end(result, calls)

    # -- feedback -------------------------------------------------------------------------------
    def feedback(self, feedback: Feedback, *, router: str) -> None:
        """Send an outcome to the router labelled ``router`` and record it as a learning event."""
        try:
            r = self.routers[router]
        except KeyError:
            raise FeedbackError(f"flow {self.name!r} has no router {router!r}; routers: {', '.join(self.routers)}") from None
        r.feedback(feedback)
        self.recorder.record(EventRecord(kind="learning_update", decision_id=feedback.decision_id,
                                         target=feedback.target, detail={"router": router, "reward": feedback.reward}))

    def close(self) -> None:
        """Flush and close the recorder, close the checkpointer's connections and stop the routers."""
        try:
            self.recorder.close()
        finally:
            for r in self.routers.values():
                r.close()
            for fut in self._async.values():
                _stop_saver(fut)
            self._async.clear()
            conn = getattr(self.graph.checkpointer, "conn", None)
            if conn is not None and self.checkpoint_path is not None:
                conn.close()
            if self._serde is not None:
                self._serde.close()

    async def aclose(self) -> None:
        """Async :meth:`close` (closes the async checkpointer connection of the running loop cleanly)."""
        loop = asyncio.get_running_loop()
        fut = self._async.pop(loop, None)
        if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
            await fut.result()[1].conn.close()
        self.close()


def _stop_saver(fut: asyncio.Future[tuple[Any, Any]]) -> None:
    if not fut.done() or fut.cancelled() or fut.exception() is not None:
        return
    conn = getattr(fut.result()[1], "conn", None)
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.stop()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return str(a) == str(b)
