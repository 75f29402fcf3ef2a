"""The package layout stays readable: no import cycles, commands on top, the run machinery below them."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "erase"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every erase module -> the erase modules it imports, at the top or inside a function."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(graph.get(current, ()))
        return False

    # a package __init__ that re-exports its submodules is not a cycle of the code
    cycles = sorted((a, b) for a, targets in graph.items() for b in targets
                    if reaches(b, a) and not (a.startswith(b + ".") or b.startswith(a + ".")))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_commands_are_on_top():
    graph = imports()
    for name, targets in graph.items():
        if name in ("erase.__main__", "erase.cli"):
            continue
        if not name.startswith("erase.commands."):
            below = sorted(t for t in targets if t.startswith("erase.commands") or t == "erase.cli")
            assert not below, f"{name} imports the command layer: {below}"
        else:
            others = sorted(t for t in targets if t.startswith("erase.commands.") and t != name)
            assert not others, f"{name} imports another command: {others}"


def test_cli_dispatches_to_one_module_per_command():
    from erase.cli import COMMANDS, build_parser

    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert sorted(COMMANDS) == sorted(choices)
    for command, module in COMMANDS.items():
        assert (PACKAGE / "commands" / f"{module}.py").is_file(), command
        assert module.rstrip("_") == command
