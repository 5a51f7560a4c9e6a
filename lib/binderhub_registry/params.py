"""Parameter rules: one rule per parameter name, checked before any cloud call.

A provider declares its parameters as a tuple of :class:`Parameter`; the same
declaration drives validation, the ipywidgets form and the docs. A broken rule
raises :class:`~binderhub_registry.errors.InvalidParameter`, whose one-line
message names the parameter and states its rule.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import io
import os
import re
import tokenize
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidParameter

__all__ = [
    "INJECTED_HEADER",
    "Parameter",
    "ParametersCell",
    "UnknownParameter",
    "assigned_names",
    "check_names",
    "choice",
    "directory",
    "flag",
    "image_name_prefix",
    "injected_names",
    "integer",
    "read_parameters_cell",
    "refuse_unknown_injected",
    "text",
    "validate",
]


@dataclass(frozen=True)
class Parameter:
    """One notebook parameter: its name, its rule in words, and the check enforcing it."""

    name: str
    rule: str
    kind: str  # "text", "flag", "choice", "integer", "directory": picks the form widget
    check: Callable[[Any], bool]
    choices: tuple[str, ...] = field(default=())
    #: The value when a parameters cell lacks it (unless ``required``). Only for a parameter
    #: added later whose default keeps the old behaviour, so older cells and scripts still run.
    default: Any = field(default=None, kw_only=True)
    required: bool = field(default=True, kw_only=True)

    def validate(self, value: Any) -> Any:
        """Return ``value`` when it follows the rule, else raise InvalidParameter."""
        try:
            ok = self.check(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidParameter(self.name, self.rule, value)
        return value


def text(
    name: str, pattern: str, rule: str, *, optional: bool = False, max_length: int = 255
) -> Parameter:
    """A string matching ``pattern`` in full (and empty when ``optional``)."""
    compiled = re.compile(pattern)

    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        if value == "":
            return optional
        return len(value) <= max_length and compiled.fullmatch(value) is not None

    return Parameter(name, rule + ("; or empty" if optional else ""), "text", check)


def image_name_prefix(name: str) -> Parameter:
    """The start of image names BinderHub builds: one path component, open-ended.

    BinderHub appends the repository's slug, so a trailing separator is allowed.
    It lowercases the whole image name and turns every ``_`` into ``-``
    (binderhub/builder.py), so a prefix with either would not be the one in
    ``image_prefix``: only what BinderHub leaves unchanged is accepted, and
    verification pushes to the repository name BinderHub will use.
    """
    return text(
        name,
        r"[a-z0-9]+(?:[.-][a-z0-9]+)*[.-]?",
        "must start with a lowercase letter or digit, then lowercase letters, digits and "
        "single '.' or '-' separators, at most 64 characters, no '/' and no '_' "
        "(BinderHub lowercases image names and turns '_' into '-')",
        max_length=64,
    )


def flag(name: str, *, default: bool | None = None) -> Parameter:
    """A boolean: True or False, nothing else (papermill's ``-p x False`` gives a bool).

    With ``default``, a parameters cell may leave it out (see :attr:`Parameter.default`).
    """
    return Parameter(
        name,
        "must be True or False",
        "flag",
        lambda v: isinstance(v, bool),
        default=default,
        required=default is None,
    )


def integer(name: str, low: int, high: int, *, default: int | None = None) -> Parameter:
    """An int between ``low`` and ``high`` inclusive.

    With ``default``, a parameters cell may leave it out (see :attr:`Parameter.default`).
    """

    def check(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    return Parameter(
        name,
        f"must be a whole number from {low} to {high}",
        "integer",
        check,
        default=default,
        required=default is None,
    )


def choice(name: str, options: Iterable[str], *, default: str | None = None) -> Parameter:
    """One of a fixed set of strings.

    With ``default``, a parameters cell may leave it out (see :attr:`Parameter.default`).
    """
    opts = tuple(options)
    return Parameter(
        name,
        "must be one of " + ", ".join(opts),
        "choice",
        lambda v: isinstance(v, str) and v in opts,
        opts,
        default=default,
        required=default is None,
    )


def directory(name: str) -> Parameter:
    """A path for output files: not empty, and not an existing file."""

    def check(value: Any) -> bool:
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            return False
        return not os.path.isfile(value)

    return Parameter(
        name, "must be a directory path (created if missing), not a file", "directory", check
    )


def validate(spec: Iterable[Parameter], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check every parameter of ``spec`` in ``values``, in order; return them as a dict.

    Raises InvalidParameter for the first one that breaks its rule, or that is missing
    (a parameter with a default takes it when missing).
    """
    out: dict[str, Any] = {}
    for param in spec:
        if param.name in values:
            out[param.name] = param.validate(values[param.name])
        elif param.required:
            raise InvalidParameter(param.name, "is required (missing from the parameters cell)")
        else:
            out[param.name] = param.default
    return out


# --- names that are no parameter --------------------------------------------------------------
#: How papermill's injected cell starts (translators.py: ``comment("Parameters")``, then one
#: ``name = value`` line per parameter; the cell is tagged ``injected-parameters``).
INJECTED_HEADER = "# Parameters"


class UnknownParameter(InvalidParameter):
    """A name given as a parameter that the notebook does not have (a typo, most often).

    Its message never shows the value: a secret passed by mistake (``-p password ...``)
    must not be printed.
    """

    def __init__(self, name: str, rule: str, value: object = None) -> None:
        super().__init__(name, rule, value)
        self.args = (f"parameter {name!r}: {rule}",)


def assigned_names(source: str) -> list[str]:
    """The names a cell assigns at its top level (``x = 1``, ``x: int = 1``), in order.

    Raises SyntaxError for source that is not Python.
    """
    names: list[str] = []
    for node in ast.parse(source).body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id not in names:
                    names.append(leaf.id)
    return names


@dataclass(frozen=True)
class ParametersCell:
    """What a notebook's parameters cell says: its names in order, their literal defaults, and
    the comment on each name's line."""

    names: list[str]
    defaults: dict[str, object]
    comments: dict[str, str]


def read_parameters_cell(source: str) -> ParametersCell:
    """Read a parameters cell's source without running it (a default that is not a literal is
    left out of ``defaults``). Raises SyntaxError for source that is not Python."""
    tree = ast.parse(source)
    line_comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            line_comments.setdefault(token.start[0], token.string.lstrip("#").strip())
    defaults: dict[str, object] = {}
    comments: dict[str, str] = {}
    for node in tree.body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        with contextlib.suppress(ValueError, TypeError, SyntaxError):
            defaults[target.id] = ast.literal_eval(value)
        comment = line_comments.get(node.lineno)
        if comment:
            comments[target.id] = comment
    return ParametersCell(assigned_names(source), defaults, comments)


def check_names(given: Iterable[str], known: Iterable[str], how: str = "") -> None:
    """Raise :class:`UnknownParameter` for the first of ``given`` not in ``known``: one line
    naming it and the closest known name (``how`` says where the name came from)."""
    allowed = list(known)
    for name in given:
        if name in allowed:
            continue
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "it takes " + ", ".join(allowed)
        raise UnknownParameter(name, f"is not a parameter of this notebook{how}: {hint}")


def injected_names(namespace: Mapping[str, Any]) -> list[str] | None:
    """The names papermill injected into this kernel, or None when it injected nothing.

    A notebook's namespace in IPython holds its input history (``_ih``, also ``In``):
    papermill's injected-parameters cell is the last input that starts with
    :data:`INJECTED_HEADER`. A plain ``papermill -p user_name x`` only warns about an
    unknown name and injects it anyway; this is how the notebook sees it.
    """
    history = namespace.get("_ih", namespace.get("In"))
    if not isinstance(history, list):
        return None  # not IPython (a script, a test running the cells itself)
    for source in reversed(history):
        if isinstance(source, str) and source.startswith(INJECTED_HEADER):
            try:
                return assigned_names(source)
            except SyntaxError:
                return None  # not papermill's: it writes Python
    return None


def refuse_unknown_injected(spec: Iterable[Parameter], namespace: Mapping[str, Any]) -> None:
    """Raise :class:`UnknownParameter` when papermill injected a name ``spec`` lacks."""
    names = injected_names(namespace)
    if names:
        check_names(names, [p.name for p in spec], " (papermill -p injected it)")
