#!/usr/bin/env python3
"""Prints docs/ARCHITECTURE.md's tables "Every path, one hop at a time": for each route of
crates/pier-server/src/http/mod.rs (and of `http/unsupported.rs`, and of the console's
`console/mod.rs`), its handler, the engine calls the handler and the helpers of its layer it
calls make (three levels), the store methods and PG calls those engine methods reach (three
levels of `self.` calls). Read from the source text: a map for readers, not a proof.

    python3 .ci/route_table.py > /tmp/table.md
"""
import glob
import os
import re

FN = re.compile(r"\n\s*(?:pub(?:\([^)]*\))? )?(?:async )?fn (\w+)")
HIDE = {"now", "config", "anon_limits", "public_base", "redirect_binding", "cert_binding", "clone"}


def functions(base, keyed):
    out = {}
    for f in glob.glob(os.path.join(base, "**", "*.rs"), recursive=True):
        s = open(f, encoding="utf-8").read()
        # `http/checkout/order.rs` is `checkout` (its mod.rs re-exports it).
        mod = os.path.relpath(f, base).split(os.sep)[0].removesuffix(".rs")
        for m in FN.finditer(s):
            nxt = FN.search(s, m.end())
            body = s[m.start():(nxt.start() if nxt else len(s))]
            key = f"{mod}::{m.group(1)}" if keyed else m.group(1)
            out[key] = out.get(key, "") + body
    return out


ROUTE = re.compile(
    r'\.route\(\s*"([^"]+)",\s*((?:[^()]|\((?:[^()]|\([^()]*\))*\))*?)\)\s*(?=\n|\.|;)', re.S
)
METHOD = re.compile(r"\b(get|post|put|delete|options)\(([\w:]+)\)")


def routes_of(src):
    out = []
    for m in ROUTE.finditer(src):
        for mm in METHOD.finditer(m.group(2)):
            r = (mm.group(1).upper(), m.group(1), mm.group(2))
            if r not in out:  # `/metrics` is also `metrics_router()`'s
                out.append(r)
    return out


def unsupported_routes(src):
    """`http/unsupported.rs`: closures answering the refusal, and one `format!` loop."""
    out = []
    loop = re.search(r"for action in \[(.*?)\]\s*\{\s*r = r\.route\(&format!\(\"([^\"]+)\"\)", src, re.S)
    if loop:
        path = loop.group(2).replace("{{", "{").replace("}}", "}")
        for action in re.findall(r'"([^"]+)"', loop.group(1)):
            out.append(("POST", path.replace("{action}", action)))
    for m in re.finditer(r'\.route\(\s*"([^"]+)",\s*(.*?)\)\s*(?=\n\s*\.route|\n\s*\}|\n\}$|$)', src, re.S):
        path, body = m.group(1), m.group(2)
        methods = re.findall(r"\b(get|post|put|delete)\(", body)
        if not methods and "naver_get" in body:
            methods = ["get"]  # `naver_get()`, a `get(...)` made once above
        for meth in methods:
            out.append((meth.upper(), path))
    return out


def main():
    root = os.path.join(os.path.dirname(__file__), "..", "crates", "pier-server", "src")
    http = functions(os.path.join(root, "http"), True)
    console = functions(os.path.join(root, "console"), True)
    eng = functions(os.path.join(root, "engine"), False)
    src = open(os.path.join(root, "http", "mod.rs"), encoding="utf-8").read()
    routes = routes_of(src)

    def engine_calls(body):
        return set(re.findall(r"(?:engine|state)\s*\.\s*(\w+)\(", body)) - HIDE

    def handler_calls(fns, h, depth=3, seen=None):
        """The engine calls of handler `h` and of the helpers of its layer it calls
        (`helper(`, `module::helper(`, `super::module::helper(`), three levels deep."""
        seen = set() if seen is None else seen
        if h in seen or depth < 0 or h not in fns:
            return set()
        seen.add(h)
        body = fns[h]
        calls = engine_calls(body)
        mod = h.split("::")[0]
        # Function calls, not method calls (`.find(`).
        for m in re.finditer(r"(?<![.\w])(?:(\w+)::)?(\w+)\(", body):
            k = f"{m.group(1) or mod}::{m.group(2)}"
            if k not in fns and not m.group(1):
                # A helper imported from a sibling module (`use super::view::layout`): the one
                # function of that name in the layer, if there is exactly one.
                named = [f for f in fns if f.endswith(f"::{m.group(2)}")]
                k = named[0] if len(named) == 1 else k
            if k != h and k in fns:
                calls |= handler_calls(fns, k, depth - 1, seen)
        return calls

    def reach(name, depth=3, seen=None):
        seen = set() if seen is None else seen
        if name in seen or depth < 0 or name not in eng:
            return set(), set()
        seen.add(name)
        body = eng[name]
        store = set(re.findall(r"store\s*\.\s*(\w+)\(", body))
        pg = set(re.findall(r'pg_call\(\s*"(\w+)"', body))
        for c in set(re.findall(r"(?:self|this)\s*\.\s*(\w+)\(", body)):
            a, b = reach(c, depth - 1, seen)
            store |= a
            pg |= b
        return store, pg

    def fmt(xs):
        return ", ".join(f"`{x}`" for x in sorted(xs)) or "—"

    def row(fns, meth, path, h):
        calls = handler_calls(fns, h)
        store, pg = set(), set()
        for c in calls:
            a, b = reach(c)
            store |= a
            pg |= b
        print(f"| `{meth} {path}` | `{h}` | {fmt(calls)} | {fmt(store)} | {fmt(pg)} |")

    print("| Method and path | Handler (`http/`) | Engine call | Store methods (SQL) | PG calls |")
    print("|---|---|---|---|---|")
    for meth, path, h in routes:
        row(http, meth, path, h)
    unsupported = open(os.path.join(root, "http", "unsupported.rs"), encoding="utf-8").read()
    for meth, path in unsupported_routes(unsupported):
        print(f"| `{meth} {path}` | `unsupported::refusal` | — | — | — |")
    print()
    print("The console (`console::router`, HTML pages and forms; docs/console.md). Besides the")
    print("calls listed, every page but sign-in resolves its session through the `Signed` or `Post`")
    print("extractor (`console_session`: `get_session`, `get_operator`, `touch_session`,")
    print("`delete_session`):")
    print()
    print("| Method and path | Handler (`console/`) | Engine call | Store methods (SQL) | PG calls |")
    print("|---|---|---|---|---|")
    csrc = open(os.path.join(root, "console", "mod.rs"), encoding="utf-8").read()
    for meth, path, h in routes_of(csrc):
        row(console, meth, path, h)


if __name__ == "__main__":
    main()
