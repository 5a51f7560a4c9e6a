"""An ipywidgets form over a notebook's parameters cell, whose values survive Run All.

The form shows one labelled widget per parameter (``sandbox`` first), with one line of
help from the parameters cell's comment and the parameter's rule, and a link to the
notebook's step that uses it; the run modes (``dry_run``, ``teardown``, ``rotate``,
``keep_replaced``) are one "What this run does" choice, which cannot contradict itself;
and the environment variables the registry's sign-in reads are listed (set or not,
never their values).

What is typed is kept by the form, not only written into the namespace: Run All
re-runs the parameters cell, which resets every variable, so the check cell's
``validate(globals())`` applies the form's values again (:func:`apply_form`) and says
so in one line. In JupyterLab they are also kept on disk for the notebook (parameters
are never secrets; the file is 0600 under :data:`STORE_VARIABLE`, else the user's
cache), so "Restart Kernel and Run All" keeps them too. A value typed into the form
that breaks its rule stops the check cell with that rule. Editing the parameters cell
itself wins over the form for the parameters it changes (the newer edit wins); the
form's "Use the parameters cell" button forgets every form value. Headless runs skip
the form's cell (tags ``skip-execution`` and ``nbval-skip``), so they never see a
form's values.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tokenize
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from .params import Parameter, read_parameters_cell
from .secrets import write_private_file

__all__ = ["MODES", "STORE_VARIABLE", "apply_form", "forget_forms", "form"]

#: Environment variable: the folder keeping each notebook's typed values across kernel
#: restarts (default: ``$XDG_CACHE_HOME/binderhub-registry/forms``, else ``~/.cache/...``).
STORE_VARIABLE = "BINDERHUB_REGISTRY_FORMS_DIR"

#: The flags one "What this run does" choice sets, and the choices: (label, flags set).
MODE_FLAGS = ("dry_run", "teardown", "rotate", "keep_replaced")
MODES: tuple[tuple[str, frozenset[str]], ...] = (
    ("create or reuse, then write and verify the values", frozenset()),
    ("dry run: show what would be done, change nothing", frozenset({"dry_run"})),
    ("rotate: new credentials, verified, then the old ones removed", frozenset({"rotate"})),
    (
        "rotate, keeping the old credentials until the new values are deployed",
        frozenset({"rotate", "keep_replaced"}),
    ),
    ("dry run of a rotation", frozenset({"dry_run", "rotate"})),
    (
        "create or reuse, keeping the credentials a rotation replaced",
        frozenset({"keep_replaced"}),
    ),
    ("tear down: delete what this notebook created", frozenset({"teardown"})),
    ("dry run of a teardown: list what would be deleted", frozenset({"dry_run", "teardown"})),
)


@dataclass
class _Kept:
    """What one form keeps for one namespace: the parameters cell's values it last saw and
    what was typed into it (valid or not)."""

    namespace: MutableMapping[str, Any]
    spec: tuple[Parameter, ...]
    cell: dict[str, Any] = field(default_factory=dict)
    typed: dict[str, Any] = field(default_factory=dict)
    written: dict[str, Any] = field(default_factory=dict)  # the form's last write-back of each

    def sync(self) -> None:
        """Read the parameters cell's values again; one changed there since wins over the form."""
        for param in self.spec:
            now = self.namespace.get(param.name, param.default)
            if param.name in self.typed:
                if _same(now, self.cell.get(param.name)) or (
                    param.name in self.written and _same(now, self.written[param.name])
                ):
                    continue  # the cell as it was, or the form's write-back: the form's value holds
                del self.typed[param.name]  # the cell was edited since: the newer edit wins
                self.save()
            self.cell[param.name] = now

    def load(self) -> None:
        """What a kernel before this one kept for this notebook (JupyterLab's restart)."""
        path = _store()
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path else {}
        except (OSError, ValueError):
            return  # none, or unreadable: start from the parameters cell
        names = {p.name for p in self.spec}
        if isinstance(data, dict) and data.get("names") == sorted(names):
            self.cell = {k: v for k, v in dict(data.get("cell", {})).items() if k in names}
            self.typed = {k: v for k, v in dict(data.get("typed", {})).items() if k in names}

    def save(self) -> None:
        """Keep the typed values for the next kernel on this notebook (nothing typed: no file)."""
        path = _store()
        if path is None:
            return
        if not self.typed:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return
        data = {
            "notebook": os.environ.get("JPY_SESSION_NAME", ""),
            "names": sorted(p.name for p in self.spec),
            "cell": self.cell,
            "typed": self.typed,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private_file(path, json.dumps(data, indent=1))
        except (OSError, TypeError, ValueError):
            pass  # kept in this kernel still; only a restart would lose them

    def value(self, name: str) -> Any:
        """The form's value of ``name``: typed, else the parameters cell's."""
        return self.typed.get(name, self.cell.get(name))

    def set(self, param: Parameter, value: Any) -> str:
        """Keep a typed value (one equal to the cell's is forgotten); return its rule if broken."""
        if _same(value, self.cell.get(param.name)):
            self.typed.pop(param.name, None)
        else:
            self.typed[param.name] = value
        self.save()
        try:
            self.namespace[param.name] = self.written[param.name] = param.validate(value)
        except ValueError as exc:
            return str(getattr(exc, "rule", exc))
        return ""


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _store() -> Path | None:
    """The file keeping this notebook's typed values; None outside JupyterLab."""
    notebook = os.environ.get("JPY_SESSION_NAME", "")
    if not notebook:
        return None
    folder = os.environ.get(STORE_VARIABLE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "binderhub-registry",
        "forms",
    )
    return Path(folder) / (hashlib.sha256(notebook.encode()).hexdigest()[:24] + ".json")


_forms: list[_Kept] = []


def _kept(namespace: Mapping[str, Any], spec: Iterable[Parameter]) -> _Kept | None:
    names = tuple(p.name for p in spec)
    for kept in _forms:
        if kept.namespace is namespace and tuple(p.name for p in kept.spec) == names:
            return kept
    return None


def forget_forms() -> None:
    """Forget every form's values (a new kernel's state)."""
    _forms.clear()


def apply_form(spec: Iterable[Parameter], values: Mapping[str, Any]) -> Mapping[str, Any]:
    """``values`` with the values typed into this namespace's form, if one was shown.

    Called by the check cell's ``validate(globals())``: Run All has just reset every variable
    from the parameters cell, and the form's values must still be the ones used. Prints
    "using the form's values: name=value, ..." (parameters are never secrets). A typed value
    that breaks its rule raises that rule's InvalidParameter, never falls back to another.
    """
    spec = tuple(spec)
    kept = _kept(values, spec)
    if kept is None:
        return values
    kept.sync()
    if not kept.typed:
        return values
    typed = [(p, kept.typed[p.name]) for p in spec if p.name in kept.typed]
    print("using the form's values: " + ", ".join(f"{p.name}={v!r}" for p, v in typed))
    for param, value in typed:
        param.validate(value)  # InvalidParameter: the one-line rule stops the check cell
    return {**values, **{p.name: v for p, v in typed}}


# --- the widgets --------------------------------------------------------------------------


def _provider(spec: tuple[Parameter, ...]) -> Any:
    """The provider module whose ``PARAMETERS`` is ``spec`` (None for a spec of one's own)."""
    for name, module in list(sys.modules.items()):
        if (
            name.startswith("binderhub_registry.providers.")
            and getattr(module, "PARAMETERS", None) == spec
        ):
            return module
    return None


def _comments(namespace: Mapping[str, Any], spec: tuple[Parameter, ...]) -> dict[str, str]:
    """Each parameter's comment in the parameters cell, from the kernel's input history."""
    names = {p.name for p in spec}
    for source in reversed(list(namespace.get("In", []) or [])):
        try:
            comments = read_parameters_cell(str(source)).comments
        except (SyntaxError, tokenize.TokenError):
            continue  # IPython magics, or a cell that is not Python
        found = {name: comment for name, comment in comments.items() if name in names}
        if len(found) * 2 >= len(names):  # the parameters cell, not a cell naming one of them
            return found
    return {}


def _steps(spec: tuple[Parameter, ...]) -> dict[str, tuple[str, str]]:
    """For each parameter, the first step heading whose section mentions it: (text, anchor).

    Read from the notebook the kernel runs (``JPY_SESSION_NAME``, set by Jupyter Server);
    nothing when unknown.
    """
    path = os.environ.get("JPY_SESSION_NAME", "")
    if not path.endswith(".ipynb"):
        return {}
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    found: dict[str, tuple[str, str]] = {}
    heading = None
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell.get("source", ""))
        match = re.search(r"^#{2,3} +(Step .+)$", text, re.M)
        if match:
            title = match.group(1).strip()
            heading = (title, title.replace(" ", "-"))  # JupyterLab's heading ids
        if heading is None:
            continue
        for param in spec:
            if param.name not in found and f"`{param.name}`" in text:
                found[param.name] = heading
    return found


def _label(name: str) -> str:
    words = name.replace("_", " ")
    return words[:1].upper() + words[1:]


def _one_line(rule: str) -> str:
    """A rule without its closing reason when long: the help line (the whole rule shows
    when a value breaks it)."""
    return re.sub(r" \([^()]*\)$", "", rule) if len(rule) > 100 else rule


def _widget(param: Parameter, value: Any) -> Any:
    import ipywidgets as w

    layout = w.Layout(flex="1 1 14em", max_width="32em", min_width="10em")
    if param.kind == "flag":
        return w.Checkbox(value=bool(value), indent=False, description="", layout=layout)
    if param.kind == "choice":
        options = list(param.choices)
        return w.Dropdown(
            options=options, value=value if value in options else options[0], layout=layout
        )
    if param.kind == "integer":
        return w.IntText(value=value if isinstance(value, int) else 0, layout=layout)
    return w.Text(value=str(value), layout=layout, continuous_update=False)


def _row(label: str, name: str, widget: Any, help_html: str, message: Any, key: str = "") -> Any:
    import ipywidgets as w

    code = f" <code style='font-size:85%'>{escape(name)}</code>" if name else ""
    title = w.HTML(
        f"<b>{escape(label)}</b>{code}",
        layout=w.Layout(flex="0 0 16em", max_width="100%"),
    )
    top = w.HBox([title, widget], layout=w.Layout(flex_flow="row wrap", align_items="center"))
    helper = w.HTML(
        f"<div style='color:#555;font-size:90%;line-height:1.3'>{help_html}</div>",
        layout=w.Layout(margin="0 0 0 0.5em"),
    )
    box = w.VBox([top, helper, message], layout=w.Layout(margin="0 0 0.6em 0"))
    box.add_class("bhr-param")
    box.add_class(f"bhr-param-{key or name}")  # for tests and pictures (no spaces in a class)
    return box


def _mode_of(kept: _Kept, flags: tuple[str, ...]) -> frozenset[str]:
    return frozenset(f for f in flags if kept.value(f) is True)


def form(namespace: MutableMapping[str, Any], spec: Iterable[Parameter]) -> Any:
    """Return a form editing ``namespace`` (pass ``globals()``) for the parameters in ``spec``.

    Shown again (Run All), it starts from what was typed before; the check cell's
    ``validate(globals())`` applies those values (:func:`apply_form`).
    """
    import ipywidgets as w

    spec = tuple(spec)
    kept = _kept(namespace, spec)
    if kept is None:
        kept = _Kept(namespace, spec)
        kept.load()
        _forms.append(kept)
    kept.sync()
    for param in spec:  # the cell has just reset them (Run All): the form's valid values hold
        if param.name in kept.typed:
            kept.set(param, kept.typed[param.name])

    provider = _provider(spec)
    comments = _comments(namespace, spec)
    steps = _steps(spec)
    flags = tuple(f for f in MODE_FLAGS if any(p.name == f for p in spec))
    by_name = {p.name: p for p in spec}
    ordered = [by_name["sandbox"]] if "sandbox" in by_name else []
    ordered += [p for p in spec if p.name not in flags and p.name != "sandbox"]
    resets: list[Any] = []
    rows = []

    for param in ordered:
        widget = _widget(param, kept.value(param.name))
        message = w.HTML()
        help_parts = [escape(comments[param.name])] if param.name in comments else []
        help_parts.append(escape(_one_line(param.rule)))
        if param.name in steps:
            text, anchor = steps[param.name]
            help_parts.append(
                f"<a href='#{escape(anchor)}' style='color:#1a5fb4;text-decoration:underline'>"
                f"{escape(text)}</a>"
            )
        label = "Sandbox: rehearse locally" if param.name == "sandbox" else _label(param.name)
        rows.append(_row(label, param.name, widget, " · ".join(help_parts), message))

        def changed(
            change: dict[str, Any], param: Parameter = param, message: Any = message
        ) -> None:
            rule = kept.set(param, change["new"])
            message.value = f"<span style='color:#b00'>{escape(rule)}</span>" if rule else ""

        widget.observe(changed, names="value")
        rule = kept.set(param, kept.value(param.name)) if param.name in kept.typed else ""
        message.value = f"<span style='color:#b00'>{escape(rule)}</span>" if rule else ""
        resets.append((widget, param))

    if flags:
        rows.append(_mode_row(kept, flags, provider, resets))
    rows.append(_environment(provider))
    rows.insert(0, _stored_notebook_note())
    rows.insert(
        1,
        w.HTML(
            "<div style='margin-bottom:0.6em;line-height:1.4'>What you type here is what the "
            "cells below use, even after <i>Run All</i> (the check cell lists it); "
            "<i>Use the parameters cell</i> forgets it. A value that breaks its rule stops "
            "the check cell.</div>"
        ),
    )

    def reset(_: Any) -> None:
        kept.typed.clear()
        kept.save()
        for widget, param in resets:
            if param is None:
                widget.value = _mode_of(kept, flags)
            else:
                widget.value = kept.cell.get(param.name)
        for param in spec:
            namespace[param.name] = kept.cell.get(param.name, param.default)

    button = w.Button(
        description="Use the parameters cell",
        tooltip="forget what was typed here: the parameters cell's values are used",
        layout=w.Layout(width="max-content"),
    )
    button.on_click(reset)
    rows.append(button)
    box = w.VBox(rows, layout=w.Layout(max_width="52em"))
    box.add_class("bhr-form")
    return box


def _mode_row(kept: _Kept, flags: tuple[str, ...], provider: Any, resets: list[Any]) -> Any:
    """The one "What this run does" choice over the run-mode flags."""
    import ipywidgets as w

    params = getattr(provider, "Params", None)
    keeps = not getattr(params, "REPLACED_STOPS", "")
    options: list[tuple[str, frozenset[str]]] = [
        (label, mode)
        for label, mode in MODES
        if mode <= set(flags) and (keeps or "keep_replaced" not in mode)
    ]
    current = _mode_of(kept, flags)
    if current not in [mode for _, mode in options]:  # a combination set in the cell itself
        options.append(("as in the parameters cell: " + ", ".join(sorted(current)), current))
    widget = w.Dropdown(options=options, value=current, layout=w.Layout(flex="1 1 20em"))
    message = w.HTML()

    def changed(change: dict[str, Any]) -> None:
        for flag in flags:
            param = next(p for p in kept.spec if p.name == flag)
            kept.set(param, flag in change["new"])

    widget.observe(changed, names="value")
    resets.append((widget, None))
    names = ", ".join(flags)
    return _row(
        "What this run does",
        "",
        widget,
        "sets " + escape(names) + " together, in a combination the notebook accepts",
        message,
        key="run_mode",
    )


def _environment(provider: Any) -> Any:
    """The environment variables the registry's sign-in reads (set or not, never the value)."""
    import ipywidgets as w

    variables = getattr(provider, "SECRET_ENVIRONMENT", ())
    if not variables:
        return w.HTML("")
    items = "".join(
        f"<li><code>{escape(name)}</code> {'(set)' if os.environ.get(name) else '(not set)'}: "
        f"{escape(what)}</li>"
        for name, what in variables
    )
    name = escape(getattr(provider, "NAME", "the registry"))
    return w.HTML(
        f"<div style='line-height:1.3'><b>Secrets</b> are never parameters: with the sandbox "
        f"off, {name}'s sign-in reads these environment variables<ul style='margin:0.2em 0'>"
        f"{items}</ul></div>"
    )


def _stored_notebook_note() -> Any:
    """A warning when the kernel runs a stored notebook of this repository's checkout (saving
    it would overwrite the docs' source and the tests' reference): keep a copy instead."""
    import ipywidgets as w

    path = Path(os.environ.get("JPY_SESSION_NAME", "") or ".")
    stored = path.suffix == ".ipynb" and path.parent.name == "notebooks"
    if not (stored and (path.parent.parent / "tests" / "sanitize.cfg").is_file()):
        return w.HTML("")
    note = w.HTML(
        "<div style='border-left:4px solid #c60;padding:0.2em 0.6em;margin-bottom:0.6em'>"
        f"<b>{escape(path.name)} is the stored notebook</b>: the docs are made from it and the "
        "tests compare against it. To keep your run, use <i>File &gt; Save Notebook As…</i> "
        "first (say, into <code>build/</code>); saving it here makes the tests refuse it.</div>"
    )
    note.add_class("bhr-stored-note")
    return note
