"""The sandbox's route tables: :class:`~binderhub_registry.sandbox.app.PathTable` (the table a
handler reads itself, for ARM and Graph), and every backend giving its routes as a table."""

from __future__ import annotations

import pytest

from binderhub_registry.sandbox.app import Backend, PathTable, Request, Response


def _answer(text: str) -> Response:
    return Response(200, text.encode())


def test_first_row_taking_the_method_wins() -> None:
    table = PathTable(
        [
            ("GET", "/things/{id}", "get"),
            ("*", "/things/{id}", "any"),
            ("*", "{other:path}", "fallback"),
        ]
    )
    assert table.find("GET", "/things/7") == ("get", {"id": "7"})
    assert table.find("DELETE", "/things/7") == ("any", {"id": "7"})
    assert table.find("GET", "/things/7/parts") == ("fallback", {"other": "/things/7/parts"})


def test_ignore_case_matches_any_case_and_keeps_the_values_as_sent() -> None:
    rows = [("PUT", "/subscriptions/{sub}/resourceGroups/{group}", "rg")]
    with pytest.raises(LookupError):
        PathTable(rows).find("PUT", "/SUBSCRIPTIONS/S1/resourcegroups/My-RG")
    assert PathTable(rows, ignore_case=True).find(
        "PUT", "/SUBSCRIPTIONS/S1/resourcegroups/My-RG"
    ) == ("rg", {"sub": "S1", "group": "My-RG"})


def test_a_path_parameter_spans_segments_and_may_be_empty() -> None:
    table = PathTable(
        [("GET", "{scope:path}/providers/Microsoft.Authorization/roleAssignments", "x")]
    )
    assert table.find("GET", "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments")[
        1
    ] == {"scope": "/subscriptions/s"}
    assert table.find("GET", "/providers/Microsoft.Authorization/roleAssignments")[1] == {
        "scope": ""
    }


def test_no_row_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="no route for POST /x"):
        PathTable([("GET", "/x", "x")]).find("POST", "/x")


def test_add_routes_adds_each_row() -> None:
    class Plain(Backend):
        pass

    backend = Plain()
    backend.add_routes(
        [("GET", "/a", lambda r: _answer("a")), ("POST", "/a", lambda r: _answer("b"))]
    )
    handlers = backend._routes["/a"]
    request = Request("GET", "/a", {}, {}, b"")
    assert sorted(handlers) == ["GET", "POST"]
    assert handlers["POST"](request).body == b"b"
