#!/usr/bin/env python3
"""Prints docs/ARCHITECTURE.md's table "Every path, one hop at a time": for each route of
crates/pier-server/src/http/mod.rs, its handler, the engine calls the handler makes (or the
helpers of its module make), the store methods and PG calls those engine methods reach (three
levels of `self.` calls). Read from the source text: a map for readers, not a proof.

    python3 .ci/route_table.py > /tmp/table.md
"""
import glob
import os
import re

FN = re.compile(r'\n\s*(?:pub(?:\(crate\))? )?(?:async )?fn (\w+)')
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


def main():
    root = os.path.join(os.path.dirname(__file__), "..", "crates", "pier-server", "src")
    http = functions(os.path.join(root, "http"), True)
    eng = functions(os.path.join(root, "engine"), False)
    src = open(os.path.join(root, "http", "mod.rs"), encoding="utf-8").read()
    routes = []
    for m in re.finditer(
        r'\.route\(\s*"([^"]+)",\s*((?:[^()]|\((?:[^()]|\([^()]*\))*\))*?)\)\s*(?=\n|\.)', src, re.S
    ):
        for mm in re.finditer(r"(get|post|put|delete)\(([\w:]+)\)", m.group(2)):
            routes.append((mm.group(1).upper(), m.group(1), mm.group(2)))

    def engine_calls(body):
        return set(re.findall(r"engine\s*\.\s*(\w+)\(", body)) - HIDE

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

    print("| Method and path | Handler (`http/`) | Engine call | Store methods (SQL) | PG calls |")
    print("|---|---|---|---|---|")
    for meth, path, h in routes:
        mod = h.split("::")[0]
        body = http.get(h, "")
        calls = engine_calls(body)
        if not calls:
            for c in set(re.findall(r"\b(\w+)\(", body)):
                k = f"{mod}::{c}"
                if k in http and k != h:
                    calls |= engine_calls(http[k])
        store, pg = set(), set()
        for c in calls:
            a, b = reach(c)
            store |= a
            pg |= b
        print(f"| `{meth} {path}` | `{h}` | {fmt(calls)} | {fmt(store)} | {fmt(pg)} |")


if __name__ == "__main__":
    main()
