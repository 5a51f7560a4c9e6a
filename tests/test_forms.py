"""The ipywidgets form over a parameters cell: labelled widgets writing back on change, values
that survive Run All (applied by the check cell's ``validate``), and one run-mode choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as w
import nbformat
import pytest

from binderhub_registry import forms
from binderhub_registry.errors import InvalidParameter
from binderhub_registry.forms import form
from binderhub_registry.params import choice, flag, integer, text
from binderhub_registry.providers import PROVIDERS, dockerhub, get, harbor

from .conftest import ROOT


@pytest.fixture(autouse=True)
def no_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No form of another test, no JupyterLab session, and kept values in the test's folder."""
    forget = getattr(forms, "forget_forms", lambda: None)  # (absent before: tests fail, not error)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("BINDERHUB_REGISTRY_FORMS_DIR", str(tmp_path / "forms"))
    forget()
    yield
    forget()


def rows(box: Any) -> dict[str, Any]:
    """Each parameter's row, by the names it edits."""
    found: dict[str, Any] = {}

    def walk(widget: Any) -> None:
        for cls in getattr(widget, "_dom_classes", ()):
            if cls.startswith("bhr-param-"):
                found[cls.removeprefix("bhr-param-")] = widget
        for child in getattr(widget, "children", ()):
            walk(child)

    walk(box)
    return found


def field(box: Any, name: str) -> Any:
    return rows(box)[name].children[0].children[1]


def message(box: Any, name: str) -> str:
    return str(rows(box)[name].children[2].value)


def harbor_cell(tmp_path: Path) -> dict[str, Any]:
    """The values notebook 05's parameters cell sets (output_dir in the test's folder)."""
    return {
        "harbor_url": "https://harbor.example.org",
        "harbor_project": "binderhub",
        "robot_name": "binderhub-builder",
        "pull_robot_name": "binderhub-puller",
        "robot_expiry_days": -1,
        "prefix": "binder-",
        "pull_access": "secret",
        "output_dir": str(tmp_path / "out"),
        "dry_run": False,
        "teardown": False,
        "rotate": False,
        "keep_replaced": False,
        "sandbox": True,
    }


def test_form_shows_current_values_and_writes_back(tmp_path: Path) -> None:
    ns = harbor_cell(tmp_path)
    box = form(ns, harbor.PARAMETERS)
    assert isinstance(field(box, "robot_expiry_days"), w.IntText)
    assert field(box, "harbor_project").value == "binderhub"
    field(box, "harbor_project").value = "uxproject"
    assert ns["harbor_project"] == "uxproject"


def test_run_all_keeps_the_forms_values_and_validate_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run All re-runs the parameters cell, then the form cell, then the check."""
    cell = harbor_cell(tmp_path)
    ns = dict(cell)
    box = form(ns, harbor.PARAMETERS)
    field(box, "harbor_project").value = "uxproject"
    field(box, "robot_name").value = "ux-robot"
    field(box, "robot_expiry_days").value = 30

    ns.update(cell)  # Run All: the parameters cell resets every variable
    box = form(ns, harbor.PARAMETERS)  # the form cell: it shows what was typed
    assert field(box, "harbor_project").value == "uxproject"
    p = harbor.validate(ns)  # the check cell
    assert (p.harbor_project, p.robot_name, p.robot_expiry_days) == ("uxproject", "ux-robot", 30)
    out = capsys.readouterr().out
    assert out == (
        "using the form's values: harbor_project='uxproject', robot_name='ux-robot', "
        "robot_expiry_days=30\n"
    )

    ns.update(cell)  # the parameters cell again, and the check cell without the form cell
    assert harbor.validate(ns).harbor_project == "uxproject"


def test_restart_kernel_and_run_all_keeps_them_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """JupyterLab's "Restart Kernel and Run All": a new kernel, the form's values still used."""
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "05-harbor.ipynb"))
    cell = harbor_cell(tmp_path)
    field(form(dict(cell), harbor.PARAMETERS), "harbor_project").value = "uxproject"
    (kept,) = (tmp_path / "forms").iterdir()
    assert kept.stat().st_mode & 0o777 == 0o600

    forms.forget_forms()  # a new kernel: nothing in memory
    ns = dict(cell)
    box = form(ns, harbor.PARAMETERS)
    assert field(box, "harbor_project").value == "uxproject"
    assert harbor.validate(ns).harbor_project == "uxproject"
    assert "using the form's values: harbor_project='uxproject'" in capsys.readouterr().out

    next(c for c in box.children if isinstance(c, w.Button)).click()  # forget them
    assert not kept.exists()
    forms.forget_forms()
    assert harbor.validate(dict(cell)).harbor_project == "binderhub"


def test_the_parameters_cell_edited_after_the_form_wins(tmp_path: Path) -> None:
    cell = harbor_cell(tmp_path)
    ns = dict(cell)
    box = form(ns, harbor.PARAMETERS)
    field(box, "harbor_project").value = "uxproject"
    field(box, "robot_name").value = "ux-robot"
    ns.update(cell | {"robot_name": "cell-robot"})  # edited in the cell, then run
    p = harbor.validate(ns)
    assert (p.harbor_project, p.robot_name) == ("uxproject", "cell-robot")


def test_use_the_parameters_cell_forgets_the_forms_values(tmp_path: Path) -> None:
    cell = harbor_cell(tmp_path)
    ns = dict(cell)
    box = form(ns, harbor.PARAMETERS)
    field(box, "harbor_project").value = "uxproject"
    button = next(c for c in box.children if isinstance(c, w.Button))
    button.click()
    assert field(box, "harbor_project").value == "binderhub" and ns["harbor_project"] == "binderhub"
    ns.update(cell)
    assert harbor.validate(ns).harbor_project == "binderhub"


def test_no_form_no_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A headless run never shows the form: validate reads the namespace alone, silently."""
    from binderhub_registry.forms import apply_form

    ns = harbor_cell(tmp_path)
    assert apply_form(harbor.PARAMETERS, ns) is ns
    form(dict(ns), harbor.PARAMETERS)  # another namespace's form
    field(form(dict(ns), harbor.PARAMETERS), "harbor_project").value = "other"
    assert harbor.validate(ns).harbor_project == "binderhub"
    assert capsys.readouterr().out == ""


def test_an_invalid_field_stops_the_check_cell_with_its_rule(tmp_path: Path) -> None:
    """A bad value typed in the form is shown, never replaced by the last valid value."""
    ns = harbor_cell(tmp_path)
    box = form(ns, harbor.PARAMETERS)
    field(box, "robot_expiry_days").value = 30
    field(box, "robot_expiry_days").value = 99999
    assert "whole number of days from 1 to 3650" in message(box, "robot_expiry_days")
    with pytest.raises(InvalidParameter) as raised:
        harbor.validate(ns)
    assert raised.value.name == "robot_expiry_days" and raised.value.value == 99999
    assert "\n" not in str(raised.value)


def test_an_invalid_field_at_its_first_edit_stops_too(tmp_path: Path) -> None:
    ns = harbor_cell(tmp_path)
    field(form(ns, harbor.PARAMETERS), "harbor_project").value = "Not Valid"
    with pytest.raises(InvalidParameter, match="harbor_project"):
        harbor.validate(ns)


def test_labels_help_sandbox_first_and_no_raw_checkboxes(tmp_path: Path) -> None:
    """A label and one line of help per parameter, sandbox first."""
    ns = harbor_cell(tmp_path)
    stored = nbformat.read(ROOT / "notebooks" / "05-harbor.ipynb", as_version=4)
    cell = next(c for c in stored.cells if "parameters" in c.metadata.get("tags", []))
    ns["In"] = ["", cell.source, "form(globals(), harbor.PARAMETERS)"]  # the kernel's history
    box = form(ns, harbor.PARAMETERS)
    found = rows(box)
    assert next(iter(found)) == "sandbox"
    project = found["harbor_project"]
    assert "<b>Harbor project</b>" in project.children[0].children[0].value
    assert "Harbor project for BinderHub&#x27;s images" in project.children[1].value
    assert "whole number of days" in found["robot_expiry_days"].children[1].value
    checkboxes = [n for n, row in found.items() if isinstance(field(box, n), w.Checkbox)]
    assert checkboxes == ["sandbox"]


def test_the_step_link_comes_from_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = ROOT / "notebooks" / "05-harbor.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    box = form(harbor_cell(tmp_path), harbor.PARAMETERS)
    helper = rows(box)["harbor_project"].children[1].value
    assert "href='#Step-2:-a-private-project'" in helper


def test_one_run_mode_choice_that_cannot_contradict_itself(tmp_path: Path) -> None:
    ns = harbor_cell(tmp_path)
    box = form(ns, harbor.PARAMETERS)
    mode = field(box, "run_mode")
    assert isinstance(mode, w.Dropdown)
    chosen = [set(value) for _, value in mode.options]
    assert {"rotate", "teardown"} not in chosen
    # Harbor refuses rotate with keep_replaced (one secret per robot): not offered
    assert not [c for c in chosen if "keep_replaced" in c]
    mode.value = frozenset({"dry_run", "teardown"})
    assert (ns["dry_run"], ns["teardown"], ns["rotate"]) == (True, True, False)
    ns.update(harbor_cell(tmp_path))  # Run All
    p = harbor.validate(ns)
    assert p.dry_run and p.teardown and not p.rotate
    # Docker Hub keeps a replaced token until the new values are deployed: offered there
    hub = field(form({}, dockerhub.PARAMETERS), "run_mode")
    assert frozenset({"rotate", "keep_replaced"}) in [v for _, v in hub.options]


def test_a_combination_set_in_the_cell_is_shown_as_it_is(tmp_path: Path) -> None:
    ns = harbor_cell(tmp_path) | {"dry_run": True, "rotate": True, "keep_replaced": True}
    mode = field(form(ns, harbor.PARAMETERS), "run_mode")
    assert mode.label == "as in the parameters cell: dry_run, keep_replaced, rotate"


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_the_form_lists_the_secret_variables_never_their_values(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module: Any = get(key)
    variables = [name for name, _ in module.SECRET_ENVIRONMENT]
    monkeypatch.setenv(variables[0], "s3cr3t-value")
    html = form({}, module.PARAMETERS).children[-2].value
    for name in variables:
        assert f"<code>{name}</code>" in html
    assert f"<code>{variables[0]}</code> (set)" in html
    assert "s3cr3t-value" not in html


def test_form_widget_kinds() -> None:
    ns: dict[str, Any] = {"sku": "Basic", "days": 365, "on": True, "name": "x"}
    spec = (
        choice("sku", ["Basic", "Premium"]),
        integer("days", 1, 730),
        flag("on"),
        text("name", ".*", "any"),
    )
    box = form(ns, spec)
    kinds = [type(field(box, n)) for n in ("sku", "days", "on", "name")]
    assert kinds == [w.Dropdown, w.IntText, w.Checkbox, w.Text]


def test_form_shows_keep_replaced_even_when_a_cell_lacks_it() -> None:
    ns: dict[str, Any] = {"rotate": False}  # a parameters cell from before keep_replaced
    mode = field(form(ns, dockerhub.PARAMETERS), "run_mode")
    mode.value = frozenset({"rotate", "keep_replaced"})
    assert ns["keep_replaced"] is True and ns["rotate"] is True
