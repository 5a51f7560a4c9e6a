"""The ipywidgets form over a parameters cell: one widget per parameter, writing back on change."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from binderhub_registry.forms import form
from binderhub_registry.params import choice, flag, integer, text
from binderhub_registry.providers import dockerhub


def widgets(box: Any) -> list[tuple[Any, Any]]:
    return [(row.children[0], row.children[1]) for row in box.children]


def test_form_shows_current_values_and_writes_back() -> None:
    ns: dict[str, Any] = {
        "username": "binderhubdemo",
        "organization": "",
        "prefix": "binder-",
        "output_dir": "build/x",
        "dry_run": False,
        "teardown": False,
        "sandbox": True,
    }
    box = form(ns, dockerhub.PARAMETERS)
    rows = widgets(box)
    assert [wid.description for wid, _ in rows] == [p.name for p in dockerhub.PARAMETERS]
    by_name = {wid.description: (wid, msg) for wid, msg in rows}
    assert isinstance(by_name["dry_run"][0], w.Checkbox) and by_name["dry_run"][0].value is False
    assert by_name["username"][0].value == "binderhubdemo"
    by_name["username"][0].value = "someoneelse"
    by_name["dry_run"][0].value = True
    assert ns["username"] == "someoneelse" and ns["dry_run"] is True


def test_form_keeps_last_good_value_and_shows_the_rule() -> None:
    ns: dict[str, Any] = {"username": "binderhubdemo"}
    box = form(ns, dockerhub.PARAMETERS[:1])
    widget, message = widgets(box)[0]
    widget.value = "Not Valid"
    assert ns["username"] == "binderhubdemo"
    assert "4 to 30 lowercase letters or digits" in message.value
    widget.value = "validname"
    assert ns["username"] == "validname" and message.value == ""


def test_form_widget_kinds() -> None:
    ns: dict[str, Any] = {"sku": "Basic", "days": 365, "on": True, "name": "x"}
    spec = (
        choice("sku", ["Basic", "Premium"]),
        integer("days", 1, 730),
        flag("on"),
        text("name", ".*", "any"),
    )
    kinds = [type(wid) for wid, _ in widgets(form(ns, spec))]
    assert kinds == [w.Dropdown, w.IntText, w.Checkbox, w.Text]


def test_form_shows_keep_replaced_after_rotate_even_when_a_cell_lacks_it() -> None:
    ns: dict[str, Any] = {"rotate": False}  # a parameters cell from before keep_replaced
    names = [p.name for p in dockerhub.PARAMETERS]
    assert names.index("keep_replaced") == names.index("rotate") + 1
    by_name = {wid.description: wid for wid, _ in widgets(form(ns, dockerhub.PARAMETERS))}
    keep = by_name["keep_replaced"]
    assert isinstance(keep, w.Checkbox) and keep.value is False
    keep.value = True
    assert ns["keep_replaced"] is True
