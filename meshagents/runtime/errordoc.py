"""The error-code table (``meshagents/errors.toml``) against the code, and its page ``docs/errors.md``.

:func:`scan_codes` reads every ``FnError(...)`` under ``meshagents/`` from the AST: the
literal code, or each literal inside the code expression (``"a" if x else "b"``,
``code or "enroll_failed"``), an f-string as a pattern with ``*`` (``hub_http_*``), a
subclass by the code its ``__init__`` passes up (``UsageError`` → ``bad_usage``), and a
string given to a parameter or keyword named ``code`` (``check_url(..., code="bad_url")``),
the literals given to a helper that raises its parameter (``_refused(p, "manifest_invalid",
...)``) or built into a class that raises ``self.code``, and the literals a function
returns when its result is the code raised (``code = classify_ssh_failure(err)``).
A code passed through from another error (``FnError(exc.code, ...)``) adds nothing new.
``./fn index`` renders the page; ``./fn index --check`` and a unit test keep both honest.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import TypeGuard

from meshagents.errors import CODES_FILE, ErrorCode, load_codes

DOC = Path("docs") / "errors.md"
CODE_RE = re.compile(r"^[a-z*][a-z0-9_*]*$")


def _codes_in(expr: ast.expr) -> set[str]:
    if isinstance(expr, ast.JoinedStr):
        return {"".join(str(v.value) if isinstance(v, ast.Constant) else "*" for v in expr.values)}
    if isinstance(expr, ast.Constant):
        return {expr.value} if isinstance(expr.value, str) else set()
    if isinstance(expr, ast.Call):  # str(code or "x")
        return set().union(*(_codes_in(a) for a in expr.args)) if expr.args else set()
    if isinstance(expr, ast.IfExp):
        return _codes_in(expr.body) | _codes_in(expr.orelse)
    if isinstance(expr, ast.BoolOp):
        return set().union(*(_codes_in(v) for v in expr.values))
    return set()


def _subclass_codes(trees: list[ast.Module]) -> dict[str, str]:
    """Subclasses of FnError whose ``__init__`` passes a literal code to ``super().__init__``."""
    out: dict[str, str] = {}
    for tree in trees:
        for cls in ast.walk(tree):
            if not isinstance(cls, ast.ClassDef):
                continue
            for node in ast.walk(cls):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "__init__"
                    and isinstance(node.func.value, ast.Call)
                    and getattr(node.func.value.func, "id", None) == "super"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    out[cls.name] = node.args[0].value
    return out


def _forwarders(trees: list[ast.Module]) -> tuple[dict[str, tuple[int, str]], dict[str, str]]:
    """Callables that raise a code given to them, and variables a code is computed into.

    ``({"_refused": (1, "code"), "ParseError": (0, "code")}, {"classify_ssh_failure": ...})``:
    a function whose ``FnError(p, ...)`` takes its parameter ``p`` (its calls give the code);
    a class whose ``FnError(self.code, ...)`` takes its first field; and functions whose
    result is assigned to the variable an ``FnError`` raises (their returned literals count).
    """
    forwards: dict[str, tuple[int, str]] = {}
    producers: dict[str, str] = {}
    for tree in trees:
        for cls in ast.walk(tree):
            if isinstance(cls, ast.ClassDef):
                for node in ast.walk(cls):
                    if _raises(node) and _is_self_code(node.args[0]):
                        forwards[cls.name] = (0, "code")
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
            if params and params[0] in ("self", "cls"):
                params = params[1:]
            names = params + [a.arg for a in fn.args.kwonlyargs]
            assigned = {
                t.id: n.value.func
                for n in ast.walk(fn)
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                for t in n.targets
                if isinstance(t, ast.Name)
            }
            for node in ast.walk(fn):
                if not (_raises(node) and isinstance(node.args[0], ast.Name)):
                    continue
                var = node.args[0].id
                if var in names:
                    forwards[fn.name] = (params.index(var) if var in params else -1, var)
                elif var in assigned:
                    f = assigned[var]
                    producers[f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")] = var
    return forwards, producers


def _raises(node: ast.AST) -> TypeGuard[ast.Call]:
    if not isinstance(node, ast.Call) or not node.args:
        return False
    f = node.func
    return (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)) == "FnError"


def _is_self_code(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Attribute) and expr.attr == "code" and getattr(expr.value, "id", "") == "self"


def scan_codes(root: Path) -> dict[str, set[str]]:
    """code (or ``*`` pattern) → the modules (dotted) that raise it."""
    files = sorted(p for p in (root / "meshagents").rglob("*.py") if "__pycache__" not in p.parts)
    parsed = [(p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p))) for p in files]
    trees = [t for _, t in parsed]
    subclasses = _subclass_codes(trees)
    forwards, producers = _forwarders(trees)
    found: dict[str, set[str]] = defaultdict(set)
    for path, tree in parsed:
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(tree):
            codes: set[str] = set()
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name == "FnError":
                    codes |= _codes_in(node.args[0]) if node.args else set()
                elif name in subclasses:
                    codes.add(subclasses[name])
                if name in forwards:
                    index, param = forwards[name]
                    if 0 <= index < len(node.args):
                        codes |= _codes_in(node.args[index])
                    codes |= {c for kw in node.keywords if kw.arg == param for c in _codes_in(kw.value)}
                for kw in node.keywords:
                    if kw.arg == "code":
                        codes |= _codes_in(kw.value)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                params = [*a.posonlyargs, *a.args]
                pairs = list(zip(params[len(params) - len(a.defaults):], a.defaults, strict=True))
                pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
                for arg, default in pairs:
                    if arg.arg == "code":
                        codes |= _codes_in(default)
                if node.name in producers:
                    codes |= {c for r in ast.walk(node) if isinstance(r, ast.Return) and r.value
                              for c in _codes_in(r.value)}
            for code in codes:
                if CODE_RE.match(code):
                    found[code].add(module)
    return dict(found)


def table_problems(codes: dict[str, ErrorCode], raised: dict[str, set[str]]) -> list[str]:
    """Codes raised but not in the table, and table rows nothing raises."""
    missing = [
        f"{c} (raised in {', '.join(sorted(raised[c]))}) is not in {CODES_FILE}"
        for c in sorted(raised)
        if c not in codes
    ]
    dead = [
        f"{c} is in {CODES_FILE} but raised nowhere"
        for c in sorted(codes)
        if c not in raised and not codes[c].external
    ]
    return missing + dead


def render(codes: dict[str, ErrorCode], raised: dict[str, set[str]]) -> str:
    lines = [
        "# Error codes",
        "",
        "<!-- Generated by `./fn index` from meshagents/errors.toml and the code. Do not edit. -->",
        "",
        "Every failure a user or a script can see is a `FnError` with a stable code (JSON:",
        '`{"error": "<code>", "message": ...}`). The code is the contract, the message is for',
        "people. The CLI exits with the code's status: **2** for bad usage (a wrong command,",
        "option or parameter: fix the call), **1** for everything else. Meanings and exit",
        "statuses live in `meshagents/errors.toml`; a unit test checks that every code raised",
        "in `meshagents/` is listed there and that nothing listed is dead. A `*` stands for a",
        "part filled in at run time (an HTTP status, a service name).",
        "",
        "| code | exit | meaning | raised in |",
        "|---|---|---|---|",
    ]
    for code in sorted(codes):
        entry = codes[code]
        where = ", ".join(f"`{m.removeprefix('meshagents.')}`" for m in sorted(raised.get(code, ())))
        if entry.external:
            where = where or "(passed through from another service)"
        lines.append(f"| `{code}` | {entry.exit} | {entry.meaning} | {where} |")
    return "\n".join(lines) + "\n"


def build(root: Path) -> tuple[list[str], str]:
    """(problems, the page's text) for the tree at ``root``."""
    codes = load_codes(root / "meshagents" / "errors.toml")
    raised = scan_codes(root)
    return table_problems(codes, raised), render(codes, raised)
