"""No import cycle anywhere in the source (every import counts: top-level, in a function,
under TYPE_CHECKING). The layering itself is checked by ``lint-imports`` (pyproject.toml)."""

from __future__ import annotations

import grimp


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(
                        child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.append(m)
                    if m == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def _explain(graph: grimp.ImportGraph, group: list[str]) -> str:
    lines = []
    for a in group:
        for b in sorted(graph.find_modules_directly_imported_by(a)):
            if b in group:
                at = [str(d["line_number"]) for d in graph.get_import_details(importer=a,
                                                                               imported=b)]
                lines.append(f"  {a} -> {b} (line {', '.join(at)})")
    return "\n".join(lines)


def test_the_source_has_no_import_cycle() -> None:
    graph = grimp.build_graph("edge_agent", "firmware_bridge", cache_dir=None)
    assert len(graph.modules) > 100
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_explain(graph, g) for g in found)


def test_the_check_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]
