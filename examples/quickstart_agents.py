"""Offline agents for the quickstart flow: real computation, no model and no API key."""

from __future__ import annotations

import ast
import math
import operator
import re

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv,
        ast.USub: operator.neg, ast.UAdd: operator.pos}


MAX_EXPRESSION_CHARS = 200
"""Longer expressions are refused (parsing is recursive)."""
MAX_RESULT_BITS = 4096
"""Integers larger than this (about 1,233 digits) are refused: ``9**9**9`` would pin a CPU for minutes."""


def _bounded(value: float) -> float:
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise ValueError(f"the result would have more than {MAX_RESULT_BITS} bits; I only do bounded arithmetic")
    return value


def _pow(base: float, exp: float) -> float:
    # estimate the size before computing: |base| ** exp has about exp * log2|base| bits
    if isinstance(base, int) and isinstance(exp, int) and abs(base) > 1 and exp > 0:
        if exp * math.log2(abs(base)) > MAX_RESULT_BITS:
            raise ValueError(f"{base} ** {exp} is too large (over {MAX_RESULT_BITS} bits); I only do bounded arithmetic")
    try:
        return _bounded(operator.pow(base, exp))
    except OverflowError:
        raise ValueError(f"{base} ** {exp} overflows a float") from None


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return _bounded(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _pow(left, right)
        return _bounded(_OPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError("only numbers and + - * / ** % // are allowed")


def calculator(text: str) -> str:
    """Evaluate the arithmetic expression found in the text (bounded: long expressions and huge
    results are refused with a message instead of running unbounded work)."""
    m = re.search(r"[-+*/%().\d\s^]*\d[-+*/%().\d\s^]*", text[:10_000])
    if not m:
        return "I found no arithmetic expression."
    expr = m.group(0).strip().replace("^", "**")
    if len(expr) > MAX_EXPRESSION_CHARS:
        return f"That expression is longer than {MAX_EXPRESSION_CHARS} characters; I only do short arithmetic."
    try:
        value = _eval(ast.parse(expr, mode="eval").body)
    except ZeroDivisionError:
        return f"{expr}: division by zero"
    except (ValueError, SyntaxError, RecursionError) as exc:
        return f"I cannot compute {expr!r}: {exc}"
    if isinstance(value, int) and value.bit_length() > 53:
        return f"{expr} = {value}"  # exact: too large for a float
    return f"{expr} = {value:g}"


_UNITS = {  # to SI base
    "km": ("m", 1000.0), "m": ("m", 1.0), "cm": ("m", 0.01), "mi": ("m", 1609.344), "mile": ("m", 1609.344),
    "miles": ("m", 1609.344), "ft": ("m", 0.3048), "feet": ("m", 0.3048), "in": ("m", 0.0254),
    "meter": ("m", 1.0), "meters": ("m", 1.0), "inch": ("m", 0.0254), "inches": ("m", 0.0254),
    "kg": ("kg", 1.0), "g": ("kg", 0.001), "lb": ("kg", 0.45359237), "lbs": ("kg", 0.45359237),
    "pound": ("kg", 0.45359237), "pounds": ("kg", 0.45359237), "gram": ("kg", 0.001), "grams": ("kg", 0.001),
    "l": ("m3", 0.001), "liter": ("m3", 0.001), "liters": ("m3", 0.001), "litre": ("m3", 0.001),
    "litres": ("m3", 0.001), "gal": ("m3", 0.003785411784), "gallon": ("m3", 0.003785411784),
    "gallons": ("m3", 0.003785411784),
}


def converter(text: str) -> str:
    """Convert '<number> <unit> to <unit>' (length, mass, volume, °C/°F)."""
    m = re.search(r"(-?\d+(?:\.\d+)?)\s*([a-zA-Z°]+)\s+(?:to|in|into)\s+([a-zA-Z°]+)", text)
    if not m:
        return "Say it as '<number> <unit> to <unit>', e.g. '5 km to miles'."
    value, src, dst = float(m.group(1)), m.group(2).lower().strip("°"), m.group(3).lower().strip("°")
    if {src, dst} <= {"c", "f", "celsius", "fahrenheit"}:
        to_f = src.startswith("c")
        out = value * 9 / 5 + 32 if to_f else (value - 32) * 5 / 9
        return f"{value:g} °{src[0].upper()} = {out:.4g} °{dst[0].upper()}"
    if src not in _UNITS or dst not in _UNITS or _UNITS[src][0] != _UNITS[dst][0]:
        return f"I cannot convert {src} to {dst}."
    out = value * _UNITS[src][1] / _UNITS[dst][1]
    return f"{value:g} {src} = {out:.6g} {dst}"


FAQ = {
    "What is crossroads?": "An open-source framework where a router (rules, embeddings, a learned policy or an LLM) decides every choice edge of an agent graph built on LangGraph.",
    "Where are traces stored?": "In a SQLite file, crossroads.db by default (set --db or CROSSROADS_DB); any SQLAlchemy URL works.",
    "How do I see a routing decision?": "Run 'crossroads trace show RUN_ID': it lists each step and each decision with candidates, scores and rationale.",
    "Which routers are built in?": "rules, fixed, random, cheapest and most_capable; more families plug in through the same protocol and the 'crossroads.routers' entry point.",
    "Does crossroads need an API key?": "No. The quickstart runs fully offline; provider models are optional.",
}
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"the", "a", "an", "is", "are", "do", "i", "how", "what", "which", "where", "does", "to", "of", "in"}


def _words(s: str) -> set[str]:
    return {w for w in _WORD.findall(s.lower()) if w not in _STOP}


def faq(text: str) -> str:
    """Answer from a small FAQ by word overlap (Jaccard)."""
    q = _words(text)
    best, score = None, 0.0
    for question, answer in FAQ.items():
        k = _words(question) | _words(answer)
        s = len(q & k) / (len(q | _words(question)) or 1)
        if s > score:
            best, score = answer, s
    if best is None:
        return "I can do arithmetic, unit conversions and answer questions about crossroads."
    return best
