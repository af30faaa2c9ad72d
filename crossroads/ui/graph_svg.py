"""A flow's graph drawn server-side as inline SVG (no JavaScript, no CDN), from Mermaid flowchart text.

The source is LangGraph's own drawing (``compiled.get_graph().draw_mermaid()``, stored by the runtime in
the run's metadata as ``graph_mermaid``) or any simple Mermaid flowchart (``a --> b``, ``a -.-> b``,
``a["label"]``). The layout is layered: networkx orders the nodes by longest distance from the sources
over the graph with its cycle-closing edges reversed, then each layer is ordered by the mean position of
its predecessors (one barycentre pass). The path a run took is highlighted: its nodes and the edges between
consecutive nodes of the path.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["MermaidGraph", "graph_svg", "parse_mermaid"]

_NODE = re.compile(r"^([A-Za-z0-9_\-.:]+)\s*(\(\[|\[\[|\[\(|\(\(|\[|\(|\{\{|\{|>)(.*?)(\]\)|\]\]|\)\]|\)\)|\]|\)|\}\}|\})(?::::\w+)?;?$")
_END = r"([A-Za-z0-9_\-.:]+)(?:\s*(\[\[?\(?.*?\)?\]?\]|\(\[?\(?.*?\)?\]?\)))?"
_EDGE = re.compile(rf"^{_END}\s*(-\.->|-\.\s.*?\s\.->|-->\|.*?\||-->|==>|---|--\s.*?\s-->)\s*{_END}\s*;?$")
_TAGS = re.compile(r"<[^>]+>")


@dataclass
class MermaidGraph:
    """Nodes (id -> label, in declaration order) and edges (source, target, conditional)."""

    nodes: dict[str, str] = field(default_factory=dict)
    edges: list[tuple[str, str, bool]] = field(default_factory=list)


def _label(text: str) -> str:
    return html.unescape(_TAGS.sub("", text)).strip().strip('"').strip()


def parse_mermaid(text: str) -> MermaidGraph:
    """Read the nodes and edges of a Mermaid flowchart (LangGraph's ``draw_mermaid`` output included: its
    front matter, ``classDef`` and ``subgraph`` lines are skipped; dotted ``-.->`` edges are conditional)."""
    g = MermaidGraph()
    in_front = False
    for raw in text.splitlines():
        line = raw.strip()
        if line == "---":
            in_front = not in_front
            continue
        if in_front or not line or line.startswith(("%%", "classDef", "class ", "style ", "linkStyle", "subgraph",
                                                       "graph ", "flowchart ", "direction")) or line in ("end", "graph", "flowchart"):
            continue
        m = _EDGE.match(line)
        if m:
            a, a_shape, arrow, b, b_shape = m.groups()
            for n, shape in ((a, a_shape), (b, b_shape)):
                if shape:  # declared inline: a["label"] --> b
                    g.nodes[n] = _label(shape[1:-1].strip("[]()")) or n
                else:
                    g.nodes.setdefault(n, n)
            g.edges.append((a, b, arrow.startswith("-.")))
            continue
        m = _NODE.match(line)
        if m:
            g.nodes[m.group(1)] = _label(m.group(3)) or m.group(1)
    return g


def _layers(g: MermaidGraph) -> list[list[str]]:
    import networkx as nx

    dg = nx.DiGraph()
    dg.add_nodes_from(g.nodes)
    dg.add_edges_from((a, b) for a, b, _ in g.edges if a != b)
    roots = [n for n in g.nodes if dg.in_degree(n) == 0] or list(g.nodes)[:1]
    # edges that close a cycle (back edges of a DFS from the roots, then from any node left) point backwards
    back: set[tuple[str, str]] = set()
    for a, b, kind in nx.dfs_labeled_edges(dg, source=None):
        if kind == "nontree" and a != b and nx.has_path(dg, b, a):
            back.add((a, b))
    dag = nx.DiGraph()
    dag.add_nodes_from(g.nodes)
    dag.add_edges_from((a, b) for a, b in dg.edges if (a, b) not in back)
    if not nx.is_directed_acyclic_graph(dag):  # a pathological case the DFS missed: fall back to BFS depth
        depth = {n: 0 for n in g.nodes}
        for r in roots:
            for n, d in nx.single_source_shortest_path_length(dg, r).items():
                depth[n] = max(depth[n], d)
    else:
        depth = {}
        for n in nx.topological_sort(dag):
            depth[n] = max((depth[p] + 1 for p in dag.predecessors(n)), default=0)
    ends = [n for n in g.nodes if n in ("__end__", "END")]
    top = max(depth.values(), default=0)
    for n in ends:  # the end node always on the last layer
        depth[n] = max(top, depth[n])
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for n in g.nodes:
        layers[depth[n]].append(n)
    pos: dict[str, float] = {n: i for i, n in enumerate(layers[0])}
    for layer in layers[1:]:  # one barycentre pass: a node under the mean position of its predecessors
        def bary(n: str, layer: list[str] = layer) -> float:
            ps = [pos[p] for p in dag.predecessors(n) if p in pos]
            return sum(ps) / len(ps) if ps else float(layer.index(n))

        layer.sort(key=bary)
        pos.update({n: i for i, n in enumerate(layer)})
    return [layer for layer in layers if layer]


def graph_svg(text: str, path: Sequence[str] = (), *, max_label: int = 22) -> str:
    """The graph of Mermaid ``text`` as an ``<svg>`` element, top to bottom; ``path`` (node ids in the order
    visited) is highlighted. Returns ``""`` for text with no nodes."""
    g = parse_mermaid(text)
    if not g.nodes:
        return ""
    layers = _layers(g)
    nw, nh, gx, gy, pad = 150, 34, 30, 56, 12
    width = max(len(layer) for layer in layers) * (nw + gx) - gx + 2 * pad
    height = len(layers) * (nh + gy) - gy + 2 * pad
    xy: dict[str, tuple[float, float]] = {}
    for li, layer in enumerate(layers):
        row_w = len(layer) * (nw + gx) - gx
        x0 = (width - row_w) / 2
        for i, n in enumerate(layer):
            xy[n] = (x0 + i * (nw + gx), pad + li * (nh + gy))
    layer_of = {n: li for li, layer in enumerate(layers) for n in layer}
    on_path = set(path)
    path_edges = {(a, b) for a, b in zip(path, path[1:], strict=False)}
    out = [f'<svg class="flow-graph" viewBox="0 0 {width:.0f} {height:.0f}" '
           f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="flow graph">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7b8794"/></marker>'
           '<marker id="arrow-hot" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#e07a1f"/></marker></defs>']
    for a, b, cond in g.edges:
        (ax, ay), (bx, by) = xy[a], xy[b]
        hot = (a, b) in path_edges
        cls = "edge" + (" taken" if hot else "") + (" conditional" if cond else "")
        marker = "url(#arrow-hot)" if hot else "url(#arrow)"
        if a == b:  # a self loop on the right side
            d = f"M{ax + nw:.1f},{ay + nh * 0.3:.1f} C{ax + nw + 40:.1f},{ay - 10:.1f} {ax + nw + 40:.1f},{ay + nh + 10:.1f} {ax + nw:.1f},{ay + nh * 0.7:.1f}"
        elif layer_of[b] > layer_of[a]:
            x1, y1, x2, y2 = ax + nw / 2, ay + nh, bx + nw / 2, by
            d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + gy / 2:.1f} {x2:.1f},{y2 - gy / 2:.1f} {x2:.1f},{y2:.1f}"
        else:  # back edge or same layer: curve out on the side
            x1, y1, x2, y2 = ax + nw, ay + nh / 2, bx + nw, by + nh / 2
            bulge = 40 + 20 * abs(layer_of[a] - layer_of[b])
            d = f"M{x1:.1f},{y1:.1f} C{x1 + bulge:.1f},{y1:.1f} {x2 + bulge:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        dash = ' stroke-dasharray="5 4"' if cond else ""
        out.append(f'<path class="{cls}" data-from="{html.escape(a)}" data-to="{html.escape(b)}" d="{d}" fill="none" '
                   f'stroke="{"#e07a1f" if hot else "#7b8794"}" stroke-width="{2.5 if hot else 1.2}"'
                   f'{dash} marker-end="{marker}"/>')
    for n, label in g.nodes.items():
        x, y = xy[n]
        hot = n in on_path
        terminal = n in ("__start__", "__end__", "START", "END")
        text_label = label if len(label) <= max_label else label[: max_label - 1] + "…"
        out.append(f'<g class="node{" taken" if hot else ""}" data-node="{html.escape(n)}">'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{nw}" height="{nh}" rx="{nh / 2 if terminal else 5}" '
                   f'fill="{"#fde7d3" if hot else "#f2f0ff"}" stroke="{"#e07a1f" if hot else "#9aa5b1"}" '
                   f'stroke-width="{2.5 if hot else 1}"/>'
                   f'<text x="{x + nw / 2:.1f}" y="{y + nh / 2 + 4:.1f}" text-anchor="middle" font-size="12" '
                   f'font-family="system-ui, sans-serif">{html.escape(text_label)}</text>'
                   f'<title>{html.escape(label)}</title></g>')
    out.append("</svg>")
    return "".join(out)
