#!/usr/bin/env python3
"""Checks that imports between countersign's modules point down the layers.

Reads every `crate::` path in src/ (use lines, grouped uses and paths in code; not comments), maps each file and
each target to its top-level module (`src/store/…` → `store`), and reports:
  - every import that runs from a lower layer back up to a higher one;
  - every import circle (strongly connected component) spanning more than one top-level module.
Layers, bottom up, are in LAYERS below. Exit status 1 when a circle spans two modules or more than
MAX_UP imports run back up, or when the module map of docs/ARCHITECTURE.md does not name exactly
the modules in src/; `--report` only prints.
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

LAYERS = [
    ["support", "time", "text"],
    ["request", "policy", "actions", "mask", "ledger", "api"],
    ["store", "forge", "execute", "notify", "credentials", "vault", "telemetry"],
    ["engine"],
    ["jobs"],
    ["app", "server", "config", "cli", "lib", "main"],
]
MAX_UP = 7
LAYER = {m: i for i, ms in enumerate(LAYERS) for m in ms}

PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\};", re.S)


def module_of(path: Path, src: Path) -> str:
    rel = path.relative_to(src)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def targets(text: str):
    for m in GROUP.finditer(text):
        depth, name = 0, ""
        for ch in m.group(1):
            if ch == "{":
                if depth == 0 and name.strip():
                    yield name.strip().split("::")[0]
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                if name.strip():
                    yield name.strip().split("::")[0]
                name = ""
                continue
            elif depth == 0:
                name += ch
        if name.strip():
            yield name.strip().split("::")[0]
    for m in PATH.finditer(text):
        yield m.group(1)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    src = root / "src"
    edges = defaultdict(set)  # module -> modules it imports
    up = []
    for path in sorted(src.rglob("*.rs")):
        if path.stem == "tests" or path.stem.endswith("_tests") or "tests" in path.relative_to(src).parts[:-1]:
            continue
        text = path.read_text()
        # Test modules may reach anywhere; comments and docs may name anything.
        text = text.split("#[cfg(test)]", 1)[0]
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
        here = module_of(path, src)
        for target in set(targets(text)):
            target = target.strip()
            if not target or target == here or target in ("self", "super"):
                continue
            edges[here].add(target)
            lh, lt = LAYER.get(here), LAYER.get(target)
            if lh is not None and lt is not None and lt > lh:
                up.append(f"{path.relative_to(root)}: {here} (layer {lh}) -> {target} (layer {lt})")
    unknown = sorted({m for m in list(edges) + [t for ts in edges.values() for t in ts] if m not in LAYER})
    # Tarjan's strongly connected components over modules.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    circles = [c for c in sccs if len(c) > 1]
    for line in up:
        print("up:", line)
    for c in circles:
        print("circle:", " <-> ".join(c))
    if unknown:
        print("modules with no layer:", ", ".join(unknown))
    # The module map of docs/ARCHITECTURE.md names exactly the modules in src/.
    tree = {f"{d.name}/" for d in src.iterdir() if d.is_dir()}
    tree |= {f.name for f in src.glob("*.rs") if f.name not in ("lib.rs", "main.rs")}
    doc = (root / "docs" / "ARCHITECTURE.md").read_text()
    table = doc.split("## Module map", 1)[1].split("\n## ", 1)[0]
    mapped = set(re.findall(r"^\| `([a-z_]+/|[a-z_]+\.rs)` \|", table, re.M))
    unmapped, stale = sorted(tree - mapped), sorted(mapped - tree)
    if unmapped:
        print("not in docs/ARCHITECTURE.md's module map:", ", ".join(unmapped))
    if stale:
        print("in docs/ARCHITECTURE.md's module map but not in src/:", ", ".join(stale))
    print(f"{len(up)} imports run back up (at most {MAX_UP}); {len(circles)} circles span modules")
    if "--report" in sys.argv:
        return 0
    return 1 if circles or len(up) > MAX_UP or unknown or unmapped or stale else 0


if __name__ == "__main__":
    sys.exit(main())
