"""The import graph of the three packages, built from their source: no cycles, nothing private
imported across modules, and the independent checker walled off from the search."""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("constructions", "verify", "certificates")
CHECKER = "certificates.check"


def _modules():
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts = parts[:-1]
            out[".".join(parts)] = (f, is_pkg)
    return out


MODULES = _modules()


def _imports(name):
    """(target module, imported names) for every import in the module, lazy ones included."""
    path, is_pkg = MODULES[name]
    package = name if is_pkg else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, ()) for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] not in PACKAGES:
                continue
            plain = []
            for a in node.names:
                if f"{base}.{a.name}" in MODULES:       # "from pkg import submodule"
                    found.append((f"{base}.{a.name}", ()))
                else:
                    plain.append(a.name)
            if plain or not node.names:
                found.append((base, tuple(plain)))
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_import_names_a_module_of_the_tree():
    missing = sorted({(m, t) for m, imps in GRAPH.items() for t, _ in imps if t not in MODULES})
    assert not missing, missing


def test_no_import_cycles():
    edges = {m: sorted({t for t, _ in imps if t in MODULES and t != m}) for m, imps in GRAPH.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_nothing_private_is_imported_across_modules():
    bad = [f"{m} imports {n} from {t}" for m, imps in GRAPH.items() for t, names in imps
           for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_data_flows_one_way():
    """constructions -> verify -> certificates: no arrow back."""
    rank = {"constructions": 0, "verify": 1, "certificates": 2}
    bad = [f"{m} -> {t}" for m, imps in GRAPH.items() for t, _ in imps
           if rank[t.split(".")[0]] > rank[m.split(".")[0]]]
    assert not bad, bad


def test_the_checker_is_walled_off_from_the_search():
    """certificates/check/ imports neither verify nor constructions, and neither imports it."""
    bad = []
    for m, imps in GRAPH.items():
        in_checker = m == CHECKER or m.startswith(CHECKER + ".")
        for t, _ in imps:
            t_checker = t == CHECKER or t.startswith(CHECKER + ".")
            if in_checker and not t_checker:
                bad.append(f"{m} -> {t}")
            if t_checker and m.split(".")[0] in ("verify", "constructions"):
                bad.append(f"{m} -> {t}")
    assert not bad, bad


def test_each_evidence_module_imports_only_the_core():
    core = {f"{CHECKER}.core", f"{CHECKER}.arbexpr"}
    for kind in ("paving", "grid", "layered", "analytic", "mesh", "partition", "lp"):
        m = f"{CHECKER}.{kind}"
        assert m in MODULES, m
        others = {t for t, _ in GRAPH[m]} - core
        assert not others, f"{m} imports {others}"


def test_command_modules_do_not_import_each_other():
    commands = [m for m in MODULES if m.startswith("certificates.cli.")
                and m.rpartition(".")[2] not in ("main", "common", "__main__")]
    assert len(commands) >= 12
    for m in commands:
        others = {t for t, _ in GRAPH[m] if t in commands}
        assert not others, f"{m} imports {others}"


def test_the_graph_sees_real_edges():
    """A guard against a test that cannot fail: known edges are found."""
    assert any(t == f"{CHECKER}.core" for t, _ in GRAPH[f"{CHECKER}.paving"])
    assert any(t == "verify.search.paving" for t, _ in GRAPH["verify.search.certify"])
