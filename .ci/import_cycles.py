#!/usr/bin/env python3
"""Fails when a crate's source files import each other in a circle (issue #21).

A file depends on another when it names it by path: `crate::a::b` or `super::b` (in `use`
lines and inline), and a module depends on its children (it contains them). A child naming an
ancestor (`window.rs` using `crate::engine::Error`) is the module tree, not an edge; so
`app -> http -> http/vbanks -> app` is a circle and `engine -> engine/window -> engine` is not. Test modules (`#[cfg(test)]` to the end of
the file) are skipped. Reads the source text only: about 0.1 s for the workspace.

    python3 .ci/import_cycles.py            # every crate under crates/
    python3 .ci/import_cycles.py crates/pier-server
"""
import glob
import os
import re
import sys

PATH = re.compile(r'\b(crate|super)((?:::\w+)+|::\{)')
LINE_COMMENT = re.compile(r'//.*')


def module_of(src, f):
    """`src/http/vbanks.rs` -> ["http", "vbanks"]; `src/http/mod.rs` -> ["http"]."""
    rel = os.path.relpath(f, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def resolve(files, parts):
    """The file of the longest module prefix of `parts` that exists."""
    for n in range(len(parts), -1, -1):
        key = tuple(parts[:n])
        if key in files:
            return key
    return None


def cycles(src):
    files = {}
    for f in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        files[tuple(module_of(src, f))] = f
    edges = {m: set() for m in files}
    for mod, f in files.items():
        text = open(f, encoding="utf-8").read()
        cut = re.search(r'#\[cfg\(test\)\]\s*mod \w+', text)
        if cut:
            text = text[:cut.start()]
        text = "\n".join(LINE_COMMENT.sub("", l) for l in text.splitlines())
        is_dir_mod = os.path.basename(f) in ("mod.rs", "lib.rs", "main.rs")
        for m in PATH.finditer(text):
            tail = [p for p in m.group(2).split("::") if p and p != "{"]
            if m.group(1) == "crate":
                parts = tail
            else:
                # `super` of `a/b.rs` and of `a/b/mod.rs` is `a`.
                parts = list(mod[:-1]) + tail
            target = resolve(files, parts)
            if target is None or target == mod:
                continue
            # A child naming an ancestor (its error type, its state) is the module tree.
            if mod[: len(target)] == target:
                continue
            edges[mod].add(target)
        # A module contains its children: `app -> http` reaches `http/vbanks`.
        if is_dir_mod:
            edges[mod].update(c for c in files if len(c) == len(mod) + 1 and c[: len(mod)] == mod)
    # Tarjan's strongly connected components.
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out, edges


def name(m):
    return "/".join(m) or "lib"


def main():
    crates = sys.argv[1:] or sorted(glob.glob("crates/*"))
    bad = 0
    for c in crates:
        src = os.path.join(c, "src")
        if not os.path.isdir(src):
            continue
        found, edges = cycles(src)
        for comp in found:
            bad += 1
            members = set(comp)
            print(f"{c}: import circle among {', '.join(name(m) for m in comp)}")
            for m in comp:
                inner = sorted(name(t) for t in edges[m] if t in members)
                print(f"    {name(m)} -> {', '.join(inner)}")
    if bad:
        sys.exit(1)
    print(f"no import circles in {len(crates)} crates")


if __name__ == "__main__":
    main()
