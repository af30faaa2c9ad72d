"""A compiled flow: a LangGraph graph plus run bookkeeping (run ids, run records, resume, feedback)."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.errors import GraphRecursionError
from langgraph.graph import StateGraph
from langgraph.types import Command

from ..agents.targets import Target
from ..errors import FeedbackError, FlowError, StepLimitError
from ..routers.base import Router
from ..tracing.recorder import NullRecorder, Recorder, SQLRecorder
from ..tracing.records import EventRecord, RunEnd, RunStart
from ..types import END, START, Feedback, TargetInfo
from .merge import MERGE_STRATEGIES, merge_target
from .state import FlowState
from .steps import make_node, make_path

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["CompiledFlow", "RunResult"]

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

    @property
    def cost_usd(self) -> float:
        """Total cost of the run's target calls."""
        return float(self.state.get("cost_usd", 0.0))

    @property
    def steps(self) -> int:
        """Number of node executions."""
        return int(self.state.get("steps", 0))


def _checkpointer(spec: Any) -> Any:
    if spec is None:
        return None
    if spec == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        return InMemorySaver()
    if isinstance(spec, (str, Path)):
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(str(spec), check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        return SqliteSaver(conn)
    return spec


class CompiledFlow:
    """A runnable flow. ``graph`` is the LangGraph ``CompiledStateGraph``; graph methods such as
    ``get_graph``, ``get_state`` and ``astream`` are forwarded to it."""

    def __init__(self, name: str, graph: Any, recorder: Recorder, routers: Mapping[str, Router], max_steps: int) -> None:
        self.name = name
        self.graph = graph
        self.recorder = recorder
        self.routers = dict(routers)
        self.max_steps = max_steps

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
        graph = StateGraph(FlowState)
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
        for name, target in nodes.items():
            graph.add_node(name, make_node(target, rec, max_steps=flow.max_steps, is_merge=name in merge_set))

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
            infos = [nodes[c].info if c != END else TargetInfo(name=END, description="end the run") for c in r.candidates]
            health = {c: nodes[c] for c in r.candidates if c != END}
            interactive = bool(getattr(r.router, "interactive", False))
            path = make_path(r.source, r.router, infos, health, rec, fan_out=r.source in merge_nodes,
                             max_steps=flow.max_steps, as_node=interactive)
            if interactive:  # a decision node of its own: resuming the interrupt re-runs only it
                decide = f"{r.source.strip('_')}_decide"
                graph.add_node(decide, path, destinations=tuple(r.candidates))
                graph.add_edge(r.source, decide)
            else:
                graph.add_conditional_edges(r.source, path, list(r.candidates))
            routers[r.router.label] = r.router
        for name in nodes:
            if name in flow.edges or name in flow.routes:
                continue
            graph.add_edge(name, onward.get(name, END))
        if START not in flow.edges and START not in flow.routes:
            graph.add_edge(START, next(iter(flow.nodes)))
        compiled = graph.compile(checkpointer=_checkpointer(checkpointer), interrupt_before=list(interrupt_before) or None,
                                 name=flow.name)
        return cls(flow.name, compiled, rec, routers, flow.max_steps)

    # -- delegation -----------------------------------------------------------------------------
    def __getattr__(self, item: str) -> Any:
        # forward LangGraph's API (get_graph, get_state, stream, astream, ...)
        return getattr(self.__dict__["graph"], item)

    # -- running --------------------------------------------------------------------------------
    def _config(self, thread_id: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
        cfg: dict[str, Any] = dict(config or {})
        conf = dict(cfg.get("configurable") or {})
        conf["thread_id"] = thread_id
        cfg["configurable"] = conf
        cfg.setdefault("recursion_limit", self.max_steps * 2 + 10)
        return cfg

    def _start(self, text: str, thread_id: str | None, metadata: Mapping[str, Any] | None,
               config: Mapping[str, Any] | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        run_id = uuid.uuid4().hex
        thread = thread_id or run_id
        self.recorder.record(RunStart(run_id=run_id, flow=self.name, thread_id=thread, input=text,
                                      metadata=dict(metadata or {})))
        payload = {"run_id": run_id, "input": text, "metadata": dict(metadata or {}), "output": None,
                   "messages": [{"role": "user", "content": text, "name": None}]}
        return run_id, payload, self._config(thread, config)

    def _resume_run_id(self, thread_id: str, cfg: Mapping[str, Any]) -> str:
        if self.graph.checkpointer is None:
            raise FlowError("resuming a thread needs a checkpointer: compile(checkpointer=...)")
        snapshot = self.graph.get_state(cfg)
        run_id = (snapshot.values or {}).get("run_id")
        if not run_id:
            raise FlowError(f"thread {thread_id!r} has no checkpoint to resume")
        self.recorder.record(RunEnd(run_id=run_id, status="running"))
        self.recorder.record(EventRecord(kind="resume", run_id=run_id, detail={"thread_id": thread_id,
                                                                                 "next": list(snapshot.next)}))
        return run_id

    def _finish(self, run_id: str, thread_id: str, final: Mapping[str, Any]) -> RunResult:
        interrupts = tuple(final.get("__interrupt__", ()))
        status = "interrupted" if interrupts else "succeeded"
        output = final.get("output")
        self.recorder.record(RunEnd(run_id=run_id, status=status, output=output))
        return RunResult(run_id=run_id, thread_id=thread_id, output=output, status=status,
                         state={k: v for k, v in final.items() if k != "__interrupt__"}, interrupts=interrupts)

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
        """Run the flow on ``input`` to the end (or to an interrupt)."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        with self._failure_recorded(run_id):
            final = self.graph.invoke(payload, cfg)
        return self._finish(run_id, cfg["configurable"]["thread_id"], final)

    async def ainvoke(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                      config: Mapping[str, Any] | None = None) -> RunResult:
        """Async :meth:`invoke`; many runs can proceed concurrently."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        with self._failure_recorded(run_id):
            final = await self.graph.ainvoke(payload, cfg)
        return self._finish(run_id, cfg["configurable"]["thread_id"], final)

    def resume(self, thread_id: str, value: Any = None, *, config: Mapping[str, Any] | None = None) -> RunResult:
        """Continue a thread after a failure (re-runs only the failed node) or an interrupt (``value``
        answers it)."""
        cfg = self._config(thread_id, config)
        run_id = self._resume_run_id(thread_id, cfg)
        payload = Command(resume=value) if value is not None else None
        with self._failure_recorded(run_id):
            final = self.graph.invoke(payload, cfg)
        return self._finish(run_id, thread_id, final)

    def stream(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
               stream_mode: str = "updates", config: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Stream step updates (LangGraph ``stream_mode``) while recording the run."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        with self._failure_recorded(run_id):
            for chunk in self.graph.stream(payload, cfg, stream_mode=stream_mode):
                yield chunk
        final = self.graph.get_state(cfg).values if self.graph.checkpointer else {}
        self._finish(run_id, cfg["configurable"]["thread_id"], final)

    async def astream(self, input: str, *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                      stream_mode: str = "updates", config: Mapping[str, Any] | None = None) -> AsyncIterator[Any]:
        """Async :meth:`stream`."""
        run_id, payload, cfg = self._start(input, thread_id, metadata, config)
        with self._failure_recorded(run_id):
            async for chunk in self.graph.astream(payload, cfg, stream_mode=stream_mode):
                yield chunk
        final = (await self.graph.aget_state(cfg)).values if self.graph.checkpointer else {}
        self._finish(run_id, cfg["configurable"]["thread_id"], final)

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
        """Flush and close the recorder."""
        self.recorder.close()
