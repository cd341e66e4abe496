"""Where in a scenario file a problem is: the line of a field found by walking the YAML node tree,
the value as the user typed it, and pydantic's complaints turned into one-line rules.

A problem reads ``file:line: field.path: value is not valid: rule``, so a user can go straight to it.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from .schema import TAGGED, ScenarioSpec, ServingSpec

# At most this many problems are listed; the rest are counted.
MAX_ERRORS_SHOWN = 10


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``12.5e9`` and ``1e-3`` as numbers (YAML 1.2 does; PyYAML's
    YAML 1.1 resolver wants a dot and a signed exponent, so CONTRACT.md's example would read as text)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


@dataclass(frozen=True)
class Problem:
    line: int
    path: str
    text: str  # "VALUE is not valid: RULE", "missing: RULE" or "unknown key ..."


class Problems:
    """The problems found in one scenario file, each placed at the line of the field it is about."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root
        self.found: list[Problem] = []

    def __bool__(self) -> bool:
        return bool(self.found)

    def bad(self, loc: tuple[Any, ...], value: Any, rule: str) -> None:
        """The value at ``loc`` breaks ``rule``."""
        line, shown, node = locate(self.root, loc)
        self.found.append(Problem(line, dotted(shown), f"{as_written(node, value)} is not valid: {rule}"))

    def missing(self, loc: tuple[Any, ...], rule: str) -> None:
        """Nothing is at ``loc`` and ``rule`` wants something."""
        line, shown, _ = locate(self.root, loc)
        self.found.append(Problem(line, dotted(shown), f"missing: {rule}"))

    def about(self, loc: tuple[Any, ...], text: str) -> None:
        """A problem with the section at ``loc`` as a whole (``loc`` () is the file)."""
        line, shown, _ = locate(self.root, loc)
        self.found.append(Problem(line, dotted(shown), text))


def format_problems(shown: str, problems: list[Problem]) -> str:
    problems = sorted(problems, key=lambda p: p.line)
    lines = [f"{shown}:{p.line}: {p.path + ': ' if p.path else ''}{p.text}" for p in problems[:MAX_ERRORS_SHOWN]]
    if len(problems) > MAX_ERRORS_SHOWN:
        lines.append(f"{shown}: ... and {len(problems) - MAX_ERRORS_SHOWN} more problems")
    return "\n".join(lines)


def yaml_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    return "single value"


def show(value: Any) -> str:
    """A value the way the user wrote it in YAML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (int, float, str, list, dict)):
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- YAML lines of paths
def locate(root: yaml.Node, loc: tuple[Any, ...]) -> tuple[int, list[Any], yaml.Node | None]:
    """Walk ``loc`` down the node tree: (line, path elements to show, the node reached or None).

    Elements that are not in the file are skipped when more follow (pydantic adds the tag of a
    tagged union, e.g. ``arrival.poisson.rate_per_s``) and kept when last (a missing key). The line is
    that of the deepest key found, or of the value for list items.
    """
    node: yaml.Node | None = root
    line, shown = root.start_mark.line + 1, []
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode) and isinstance(elem, str):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == elem),
                         None)
            if match is None:
                if last:
                    shown.append(elem)
                    node = None
                continue
            line, node = match[0].start_mark.line + 1, match[1]
            shown.append(elem)
        elif isinstance(node, yaml.SequenceNode) and isinstance(elem, int) and 0 <= elem < len(node.value):
            node = node.value[elem]
            line = node.start_mark.line + 1
            shown.append(elem)
        elif last:
            shown.append(elem)
            node = None
    return line, shown, node


def as_written(node: yaml.Node | None, value: Any) -> str:
    """A value as the user typed it (``yes``, not ``true``; ``"8"`` with its quotes; ``[1, 8]``) when it
    fits on one short line of the file, else the value read."""
    if node is not None:
        start, end = node.start_mark, node.end_mark
        if start.buffer is not None and end is not None:
            text = start.buffer[start.pointer:end.pointer].strip()
            if text and "\n" not in text and len(text) <= 60:
                return text
    return show(value)


def dotted(elems: list[Any]) -> str:
    out = ""
    for e in elems:
        out += f"[{e}]" if isinstance(e, int) else (f".{e}" if out else str(e))
    return out


def node_at(root: yaml.Node, elems: tuple[Any, ...]) -> yaml.Node | None:
    node: yaml.Node | None = root
    for elem in elems:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == elem), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(elem, int) and elem < len(node.value):
            node = node.value[elem]
        else:
            return None
    return node


def duplicate_keys(node: yaml.Node, path: tuple[Any, ...]) -> list[Problem]:
    """PyYAML keeps the last of two equal keys without a word; a scenario refuses them."""
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                line = k.start_mark.line + 1
                if k.value in seen:
                    problems.append(Problem(line, dotted([*path, k.value]),
                                             f"duplicate key: already set on line {seen[k.value]}"))
                seen.setdefault(k.value, line)
                problems += duplicate_keys(v, (*path, k.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += duplicate_keys(item, (*path, i))
    return problems


# ----------------------------------------------------------------------- pydantic errors → rules
def fmt_num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_RULES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list, e.g. [1, 2]",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "finite_number": "must be a finite number",
}
# A bound broken: the comparison it asks for, and the key of the bound in the error's context.
_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"), "less_than": ("<", "lt"),
           "less_than_equal": ("<=", "le")}


def _rule(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUNDS:
        sign, key = _BOUNDS[kind]
        return f"must be {sign} {fmt_num(ctx[key])}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item{'s' * (ctx['min_length'] != 1)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "string_pattern_mismatch":
        return "must use only letters, digits, - and _"
    if kind in _RULES:
        return _RULES[kind]
    msg = str(err.get("msg", kind))
    return msg[0].lower() + msg[1:]


def problem_from_pydantic(err: dict[str, Any], root: yaml.Node) -> Problem:
    loc, kind = tuple(err["loc"]), err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        # Point at the tag key itself: ``serving.arrival.process: "bursty" is not valid: ...``.
        tag = str(ctx.get("discriminator", "")).strip("'")
        line, shown, node = locate(root, (*loc, tag))
        expected = ctx.get("expected_tags") or _expected_tags(loc)
        if kind == "union_tag_invalid":
            return Problem(line, dotted(shown),
                            f"{as_written(node, ctx.get('tag'))} is not valid: must be one of {expected}")
        return Problem(line, dotted(shown), f"missing: required, one of {expected}")
    line, shown, node = locate(root, loc)
    path = dotted(shown)
    if kind == "missing":
        return Problem(line, path, "missing: this field is required")
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        text = "unknown key"
        if hint:
            text += f": did you mean {hint[0]!r}?"
        elif known:
            text += f": expected one of {', '.join(known)}"
        return Problem(line, path, text)
    return Problem(line, path, f"{as_written(node, err.get('input'))} is not valid: {_rule(err)}")




def _expected_tags(loc: tuple[Any, ...]) -> str:
    key = loc[-1] if loc else None
    if key in TAGGED:
        tag, models = TAGGED[key]
        return ", ".join(repr(m.model_fields[tag].annotation.__args__[0]) for m in models)
    return "?"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``loc`` (as pydantic reports it, union tags included)."""
    model: Any = ScenarioSpec
    for elem in loc:
        if isinstance(elem, int):
            continue
        if model is None:
            return []
        sub = _model_of_field(model, elem)
        model = sub
    return list(model.model_fields) if model is not None else []


def _model_of_field(model: Any, name: str) -> Any:
    if isinstance(model, tuple):  # a tagged union: pick the member by its tag
        for m in model:
            tag = next(iter(m.model_fields))
            if m.model_fields[tag].annotation.__args__[0] == name:
                return m
        return None
    field = model.model_fields.get(name)
    if field is None:
        return None
    if name in TAGGED and model in (ServingSpec,):
        return TAGGED[name][1]
    return _first_model(field.annotation)


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None



def keys_at(root: yaml.Node, loc: tuple[Any, ...]) -> list[str]:
    node = node_at(root, loc)
    if isinstance(node, yaml.MappingNode):
        return [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
    return []


