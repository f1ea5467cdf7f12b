"""The dependency graph of a tag as server-rendered SVG (layered left to right, no JavaScript)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from planning.models import Task

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 46, 70, 18, 12
COLOURS = {
    "pending": "#eef2f7",
    "in-progress": "#fff4d6",
    "review": "#e9e3ff",
    "done": "#dcf5e6",
    "deferred": "#f1f1f1",
    "cancelled": "#f6e0de",
    "blocked": "#fde2e1",
}


def _layers(graph: dict[int, list[int]]) -> dict[int, int]:
    """Longest-path layering; an edge that closes a cycle is ignored (validate reports it)."""
    depth: dict[int, int] = {}
    visiting: set[int] = set()

    def visit(node: int) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:
            return -1
        visiting.add(node)
        stack = [(node, iter(graph.get(node, [])))]
        # Iterative depth-first search; children's depths are computed before parents.
        while stack:
            current, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                visiting.discard(current)
                depth[current] = 1 + max((depth.get(c, -1) for c in graph.get(current, []) if c in depth), default=-1)
                continue
            if child not in depth and child not in visiting and child in graph:
                visiting.add(child)
                stack.append((child, iter(graph.get(child, []))))
        return depth[node]

    for n in sorted(graph):
        visit(n)
    return depth


def render_svg(tasks: list[Task], graph: dict[str, list[str]], url_for: dict[int, str]) -> SafeString:
    """Tasks as boxes, dependencies as arrows from prerequisite to dependent.

    A dependency on a subtask ("3.2") is drawn to its parent task, dashed.
    """
    numbers = {t.number for t in tasks}
    edges: list[tuple[int, int, bool]] = []
    simple: dict[int, list[int]] = {t.number: [] for t in tasks}
    for t in tasks:
        for ref in graph.get(t.ref, []):
            head = ref.split(".", 1)[0]
            if head.isdigit() and int(head) in numbers and int(head) != t.number:
                edges.append((int(head), t.number, "." in ref))
                simple[t.number].append(int(head))
    layer = _layers(simple)
    columns: dict[int, list[Task]] = {}
    for t in tasks:
        columns.setdefault(layer.get(t.number, 0), []).append(t)
    pos: dict[int, tuple[int, int]] = {}
    for col, items in columns.items():
        for row, t in enumerate(items):
            pos[t.number] = (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(v) for v in columns.values()), default=1) * (NODE_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dep-graph" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="graph-title">',
        '<title id="graph-title">Dependency graph: arrows point from a prerequisite to the task that needs it</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#667085"/></marker></defs>',
    ]
    for src, dst, dashed in edges:
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        if ex <= sx:  # same or earlier column (only when a cycle was cut): loop around underneath
            path = f"M {sx} {sy} C {sx + 40} {sy + 60}, {ex - 40} {ey + 60}, {ex} {ey}"
        else:
            mid = (sx + ex) // 2
            path = f"M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}"
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        parts.append(
            f'<path class="edge" d="{path}" fill="none" stroke="#98a2b3" stroke-width="1.5"{dash} '
            f'marker-end="url(#arrow)"><title>{src} → {dst}</title></path>'
        )
    for t in tasks:
        x, y = pos[t.number]
        title = t.title if len(t.title) <= 24 else t.title[:23] + "…"
        parts.append(
            f'<a href="{escape(url_for[t.number])}" class="node" data-status="{escape(t.status)}">'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="7" fill="{COLOURS.get(t.status, "#fff")}" '
            f'stroke="#c4cad4"/>'
            f'<text x="{x + 8}" y="{y + 18}" font-size="12" font-weight="600" fill="#1d2330">#{t.number} '
            f'<tspan font-weight="400" fill="#667085">{escape(t.status)}</tspan></text>'
            f'<text x="{x + 8}" y="{y + 36}" font-size="12" fill="#1d2330">{escape(title)}</text>'
            f"<title>#{t.number} {escape(t.title)} ({escape(t.status)})</title></a>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
