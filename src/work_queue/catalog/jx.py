"""The JX filter expressions catalog queries carry (``dttools/src/jx_parse.c``, ``jx_eval.c``).

Enough of JX for what CCTools clients and people send: JSON values, symbols (record fields),
``== != < <= > >=``, ``+ - * / %``, ``&&``/``and``, ``||``/``or``, ``!``/``not``, unary ``-``,
parentheses, ``a[i]`` lookups and the functions ``len``, ``like``, ``keys``, ``values``.

As in CCTools, binary operators group to the right and ``and`` binds *less* tightly than
``or`` (``a || b && c`` is ``(a || b) && c``); CCTools clients print their expressions with the
parentheses this needs.  Evaluation follows ``jx_eval``: an unknown field or a type mismatch is an
error value, and a filter keeps a record only when the result is the boolean ``true``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_EXPRESSION = 64 * 1024
MAX_DEPTH = 400


class JXSyntaxError(ValueError):
    """The text is not a JX expression."""


class JXError:
    """An error value (evaluation goes on and the error propagates, as in ``jx_eval``)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"error({self.message!r})"


@dataclass(frozen=True)
class Symbol:
    name: str


@dataclass(frozen=True)
class Op:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class ObjectExpr:
    pairs: tuple[tuple[Any, Any], ...]


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>+\-*/%!()\[\]{},:.])
""", re.VERBOSE | re.DOTALL)

#: CCTools precedences (jx_operator_precedence): higher number = parsed later = binds looser.
_PRECEDENCE = {"and": 5, "or": 4, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
               "+": 2, "-": 2, "*": 1, "/": 1, "%": 1}
_SPELLING = {"&&": "and", "||": "or", "!": "not"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise JXSyntaxError(f"unexpected character {text[pos]!r} at offset {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "ws":
            continue
        if kind == "num" and value.startswith("-") and out and \
                (out[-1][0] in ("num", "str", "name") or out[-1][1] in (")", "]", "}")):
            # "a -1" is a subtraction, not a and -1
            out.append(("op", "-"))
            value = value[1:]
        if kind == "name" and value in ("and", "or", "not"):
            kind = "op"
        out.append((kind, value))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        t = self.peek()
        if t is None:
            raise JXSyntaxError("unexpected end of expression")
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        t = self.take()
        if t[1] != value:
            raise JXSyntaxError(f"expected {value!r}, found {t[1]!r}")

    def binary(self, prec: int) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise JXSyntaxError("expression nested too deeply")
        left = self.unary() if prec <= 0 else self.binary(prec - 1)
        t = self.peek()
        if t is not None and t[0] == "op":
            op = _SPELLING.get(t[1], t[1])
            if _PRECEDENCE.get(op) == prec:
                self.i += 1
                left = Op(op, left, self.binary(prec))  # right-grouping, as jx_parse_binary
        self.depth -= 1
        return left

    def unary(self) -> Any:
        t = self.peek()
        if t is not None and t[0] == "op" and _SPELLING.get(t[1], t[1]) in ("not", "-", "+"):
            self.i += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise JXSyntaxError("expression nested too deeply")
            operand = self.unary()
            self.depth -= 1
            op = _SPELLING.get(t[1], t[1])
            return Op("not", None, operand) if op == "not" else \
                Op("-", 0, operand) if op == "-" else operand
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while (t := self.peek()) is not None and t[1] in ("[", "("):
            self.i += 1
            if t[1] == "[":
                index = self.binary(5)
                self.expect("]")
                value = Op("lookup", value, index)
            else:
                if not isinstance(value, Symbol):
                    raise JXSyntaxError("only a function name can be called")
                value = Call(value.name, tuple(self.items(")")))
        return value

    def items(self, close: str) -> list[Any]:
        out: list[Any] = []
        if (t := self.peek()) is not None and t[1] == close:
            self.i += 1
            return out
        while True:
            out.append(self.binary(5))
            t = self.take()
            if t[1] == close:
                return out
            if t[1] != ",":
                raise JXSyntaxError(f"expected ',' or {close!r}, found {t[1]!r}")

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "num":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "str":
            try:
                return json.loads(value)
            except ValueError:
                raise JXSyntaxError(f"bad string {value}") from None
        if kind == "name":
            if value in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[value]
            return Symbol(value)
        if value == "(":
            inner = self.binary(5)
            self.expect(")")
            return inner
        if value == "[":
            return ListExpr(tuple(self.items("]")))
        if value == "{":
            pairs = []
            if (t := self.peek()) is not None and t[1] == "}":
                self.i += 1
                return ObjectExpr(())
            while True:
                key = self.binary(5)
                self.expect(":")
                pairs.append((key, self.binary(5)))
                t = self.take()
                if t[1] == "}":
                    return ObjectExpr(tuple(pairs))
                if t[1] != ",":
                    raise JXSyntaxError(f"expected ',' or '}}', found {t[1]!r}")
        raise JXSyntaxError(f"unexpected {value!r}")


def parse(text: str) -> Any:
    """The syntax tree of a JX expression; JXSyntaxError if it is not one."""
    if not isinstance(text, str):
        raise JXSyntaxError(f"a JX expression is text, not {type(text).__name__}")
    if len(text) > MAX_EXPRESSION:
        raise JXSyntaxError(f"expression longer than {MAX_EXPRESSION} characters")
    p = _Parser(text)
    if not p.toks:
        raise JXSyntaxError("empty expression")
    tree = p.binary(5)
    if p.peek() is not None:
        raise JXSyntaxError(f"unexpected {p.peek()[1]!r} after the expression")  # type: ignore
    return tree


def _type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "error"


def evaluate(tree: Any, context: dict[str, Any]) -> Any:
    """The value of ``tree`` with symbols looked up in ``context`` (a JXError on failure)."""
    if isinstance(tree, Symbol):
        if tree.name in context:
            return context[tree.name]
        return JXError(f"{tree.name}: undefined symbol")
    if isinstance(tree, Op):
        return _operator(tree, context)
    if isinstance(tree, Call):
        return _call(tree, context)
    if isinstance(tree, ListExpr):
        items = [evaluate(i, context) for i in tree.items]
        return next((i for i in items if isinstance(i, JXError)), items)
    if isinstance(tree, ObjectExpr):
        out = {}
        for k, v in tree.pairs:
            key, value = evaluate(k, context), evaluate(v, context)
            if isinstance(key, JXError) or isinstance(value, JXError):
                return key if isinstance(key, JXError) else value
            if not isinstance(key, str):
                return JXError("object keys must be strings")
            out[key] = value
        return out
    return tree


def _operator(o: Op, context: dict[str, Any]) -> Any:
    """One operator node.  ``and``/``or`` stop early, as ``jx_eval`` does, so that
    ``has_x && x > 1`` does not turn into an error when the left side already decides."""
    if o.op == "not":
        v = evaluate(o.right, context)
        if isinstance(v, JXError):
            return v
        return (not v) if isinstance(v, bool) else JXError("not: operand is not a boolean")
    left = evaluate(o.left, context)
    if isinstance(left, JXError):
        return left
    if o.op == "and" and left is False:
        return False
    if o.op == "or" and left is True:
        return True
    right = evaluate(o.right, context)
    if isinstance(right, JXError):
        return right
    if o.op == "lookup":
        return _lookup(left, right)
    return _binary(o.op, left, right)


def _binary(op: str, left: Any, right: Any) -> Any:
    """``left op right`` on two values.  Operands of different types meet on one type first
    (an integer and a float as floats; ``+`` with a string as text) or the result is decided
    there: never equal, else an error.  Then the left operand's type picks the rules."""
    lt, rt = _type(left), _type(right)
    if lt != rt:
        if {lt, rt} == {"integer", "float"}:
            left, right, lt = float(left), float(right), "float"
        elif op in ("==", "!="):
            return op == "!="
        elif op == "+" and "string" in (lt, rt) and \
                lt not in ("array", "object") and rt not in ("array", "object"):
            left, right, lt = _as_text(left), _as_text(right), "string"
        else:
            return JXError(f"mismatched types for operator {op}: {lt} and {rt}")
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    rules = _RULES_BY_TYPE.get(lt)
    if rules is None:
        return JXError(f"unsupported operator {op} on {lt}")
    return rules(op, left, right)


def _as_text(value: Any) -> str:
    """How ``jx_eval`` prints a non-string operand of a string ``+``: as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
}


def _on_booleans(op: str, left: bool, right: bool) -> Any:
    if op == "and":
        return left and right
    if op == "or":
        return left or right
    return JXError(f"unsupported operator {op} on boolean")


def _on_strings(op: str, left: str, right: str) -> Any:
    if op in _COMPARISONS:
        return _COMPARISONS[op](left, right)
    if op == "+":
        return left + right
    return JXError(f"unsupported operator {op} on string")


def _on_arrays(op: str, left: list[Any], right: list[Any]) -> Any:
    return left + right if op == "+" else JXError(f"unsupported operator {op} on array")


def _on_numbers(op: str, left: Any, right: Any, integer: bool) -> Any:
    """Integer ``/`` and ``%`` truncate toward zero, as C does (Python's ``//`` floors)."""
    if op in _COMPARISONS:
        return _COMPARISONS[op](left, right)
    if op in _ARITHMETIC:
        return _ARITHMETIC[op](left, right)
    if op not in ("/", "%"):
        return JXError(f"unsupported operator {op} on {'integer' if integer else 'float'}")
    if right == 0:
        return JXError("division by zero")
    if op == "/":
        return int(left / right) if integer else left / right
    return int(left - right * int(left / right)) if integer else left % right


def _on_integers(op: str, left: int, right: int) -> Any:
    return _on_numbers(op, left, right, integer=True)


def _on_floats(op: str, left: float, right: float) -> Any:
    return _on_numbers(op, left, right, integer=False)


#: The rules for ``< <= > >= + - * / % and or`` by operand type (``==``/``!=`` work on all);
#: a type missing here (null, object) supports none of them.
_RULES_BY_TYPE: dict[str, Callable[[str, Any, Any], Any]] = {
    "boolean": _on_booleans, "integer": _on_integers, "float": _on_floats,
    "string": _on_strings, "array": _on_arrays,
}


def _lookup(container: Any, index: Any) -> Any:
    if isinstance(container, dict) and isinstance(index, str):
        return container.get(index, JXError(f"no such key {index!r}"))
    if isinstance(container, list) and isinstance(index, int) and not isinstance(index, bool):
        if -len(container) <= index < len(container):
            return container[index]
        return JXError("index out of range")
    return JXError(f"cannot index {_type(container)} with {_type(index)}")


def _call(c: Call, context: dict[str, Any]) -> Any:
    args = [evaluate(a, context) for a in c.args]
    err = next((a for a in args if isinstance(a, JXError)), None)
    if err is not None:
        return err
    if c.name == "len" and len(args) == 1 and isinstance(args[0], (list, dict, str)):
        return len(args[0])
    if c.name == "like" and len(args) == 2 and all(isinstance(a, str) for a in args):
        try:
            return re.search(args[1], args[0]) is not None
        except re.error as e:
            return JXError(f"like: bad expression: {e}")
    if c.name == "keys" and len(args) == 1 and isinstance(args[0], dict):
        return list(args[0])
    if c.name == "values" and len(args) == 1 and isinstance(args[0], dict):
        return list(args[0].values())
    return JXError(f"{c.name}: unknown function or bad arguments")


def compile_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate keeping the records for which ``text`` evaluates to ``true``."""
    tree = parse(text)

    def check(record: dict[str, Any]) -> bool:
        try:
            return evaluate(tree, record) is True
        except (RecursionError, OverflowError, TypeError, ValueError):
            return False

    return check
