"""An ipywidgets form over a notebook's parameters cell.

The form shows one widget per parameter, starting from the current values,
and writes each change straight back into the notebook's namespace, with the
parameter's rule shown when a value breaks it. It uses no callbacks beyond
that write-back, so running the next cells reads exactly what the form shows.
Headless runs skip the form's cell (tags ``skip-execution`` and ``nbval-skip``).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from .errors import InvalidParameter
from .params import Parameter

__all__ = ["form"]


def _widget(param: Parameter, value: Any) -> Any:
    import ipywidgets as w

    style = {"description_width": "10em"}
    if param.kind == "flag":
        return w.Checkbox(value=bool(value), description=param.name, style=style)
    if param.kind == "choice":
        return w.Dropdown(
            options=list(param.choices), value=value, description=param.name, style=style
        )
    if param.kind == "integer":
        return w.IntText(value=int(value), description=param.name, style=style)
    return w.Text(value=str(value), description=param.name, style=style)


def form(namespace: MutableMapping[str, Any], spec: Iterable[Parameter]) -> Any:
    """Return a form editing ``namespace`` (pass ``globals()``) for the parameters in ``spec``."""
    import ipywidgets as w

    rows = []
    for param in spec:
        widget = _widget(param, namespace.get(param.name, param.default))
        message = w.HTML(layout=w.Layout(margin="0 0 0 1em"))

        def changed(
            change: dict[str, Any], param: Parameter = param, message: Any = message
        ) -> None:
            try:
                namespace[param.name] = param.validate(change["new"])
                message.value = ""
            except InvalidParameter as e:
                message.value = f"<span style='color:#b00'>{e.rule}</span>"

        widget.observe(changed, names="value")
        rows.append(w.HBox([widget, message]))
    return w.VBox(rows)
