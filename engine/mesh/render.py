"""A mesh's pipeline drawn: as text, as Graphviz DOT, or as a small self-contained SVG.

Members are drawn in pipeline order (producers first); topics label the edges between
members, and inputs from outside the mesh and outputs nobody in it reads are drawn as
topic nodes at the ends.
"""

from __future__ import annotations

from html import escape

from engine.mesh.graph import MeshGraph

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "dot", "svg")


def _short(topic: str) -> str:
    return topic.removeprefix("persistent://")


def _dangling_outputs(graph: MeshGraph) -> list[tuple[str, str]]:
    read = {(e.producer, e.topic) for e in graph.edges}
    return [
        (m.name, m.output.topic)
        for m in graph.members
        if m.output is not None and (m.name, m.output.topic) not in read
    ]


def _text(fqmn: str, graph: MeshGraph) -> str:
    kinds = {m.name: m.kind.value for m in graph.members}
    lines = [f"mesh {fqmn}: {len(graph.members)} members"]
    for name in graph.order():
        lines.append(f"  {kinds[name]} {name}")
        for member, topic in graph.external:
            if member == name:
                lines.append(f"    <- {_short(topic)} (from outside the mesh)")
        for e in graph.edges:
            if e.consumer == name:
                lines.append(f"    <- {_short(e.topic)} <- {kinds[e.producer]} {e.producer}")
        for e in graph.edges:
            if e.producer == name:
                lines.append(f"    -> {_short(e.topic)} -> {kinds[e.consumer]} {e.consumer}")
        for member, topic in _dangling_outputs(graph):
            if member == name:
                lines.append(f"    -> {_short(topic)} (read outside the mesh)")
    return "\n".join(lines) + "\n"


_SHAPES = {"source": "invhouse", "function": "box", "sink": "house"}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(fqmn: str, graph: MeshGraph) -> str:
    lines = [f"digraph {_q(fqmn)} {{", "  rankdir=LR;", f"  label={_q(fqmn)};"]
    for m in graph.members:
        label = _q(m.kind.value + "\\n" + m.name)
        lines.append(f"  {_q(m.name)} [shape={_SHAPES[m.kind.value]}, label={label}];")
    for e in graph.edges:
        lines.append(f"  {_q(e.producer)} -> {_q(e.consumer)} [label={_q(_short(e.topic))}];")
    for member, topic in graph.external:
        lines.append(f"  {_q('topic:' + topic)} [shape=plaintext, label={_q(_short(topic))}];")
        lines.append(f"  {_q('topic:' + topic)} -> {_q(member)};")
    for member, topic in _dangling_outputs(graph):
        lines.append(f"  {_q('topic:' + topic)} [shape=plaintext, label={_q(_short(topic))}];")
        lines.append(f"  {_q(member)} -> {_q('topic:' + topic)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _svg(fqmn: str, graph: MeshGraph) -> str:
    kinds = {m.name: m.kind.value for m in graph.members}
    depth: dict[str, int] = {}
    for name in graph.order():
        depth[name] = max((depth[p] + 1 for p in graph.upstream(name) if p in depth), default=0)
    columns: dict[int, list[str]] = {}
    for name in graph.order():
        columns.setdefault(depth[name], []).append(name)
    w, h, gap_x, gap_y, margin = 150, 44, 110, 36, 30
    pos = {
        name: (margin + col * (w + gap_x), margin + 20 + row * (h + gap_y))
        for col, names in columns.items()
        for row, name in enumerate(names)
    }
    width = margin * 2 + max(len(columns), 1) * (w + gap_x) - gap_x
    height = margin * 2 + 20 + max((len(n) for n in columns.values()), default=1) * (h + gap_y) - gap_y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
        f'<text x="{margin}" y="{margin}" font-weight="bold">{escape(fqmn)}</text>',
    ]
    fills = {"source": "#e3f2fd", "function": "#fff8e1", "sink": "#e8f5e9"}
    for e in graph.edges:
        (x1, y1), (x2, y2) = pos[e.producer], pos[e.consumer]
        sx, sy, ex, ey = x1 + w, y1 + h / 2, x2, y2 + h / 2
        parts.append(
            f'<line x1="{sx}" y1="{sy}" x2="{ex}" y2="{ey}" stroke="#555" marker-end="url(#arrow)"/>'
            f'<text x="{(sx + ex) / 2}" y="{(sy + ey) / 2 - 6}" text-anchor="middle" font-size="10">'
            f"{escape(_short(e.topic).rsplit('/', 1)[-1])}</text>"
        )
    for name, (x, y) in pos.items():
        kind = kinds[name]
        parts.append(
            f'<g class="{kind}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fills[kind]}" '
            f'stroke="#333"/><text x="{x + w / 2}" y="{y + 17}" text-anchor="middle" '
            f'font-size="10">{kind}</text>'
            f'<text x="{x + w / 2}" y="{y + 33}" text-anchor="middle">{escape(name)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render(fqmn: str, graph: MeshGraph, fmt: str = "text") -> str:
    """The pipeline of ``graph`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "dot":
        return _dot(fqmn, graph)
    if fmt == "svg":
        return _svg(fqmn, graph)
    if fmt == "text":
        return _text(fqmn, graph)
    raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
