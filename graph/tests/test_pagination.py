"""Cursor pagination: every item of every page, and Meta's next URL never fetched as is."""

from __future__ import annotations

import pytest

from graph.errors import OtherGraphError
from graph.tests.fakes import GRAPH_URL, FakeMeta, Reply, make_client

TOKEN = "EAAGpaging-token"


def test_paginate_follows_the_after_cursor_across_pages():
    pages = {
        None: {"data": [{"id": "1"}, {"id": "2"}], "paging": {"cursors": {"after": "c1"}, "next": "x"}},
        "c1": {"data": [{"id": "3"}], "paging": {"cursors": {"after": "c2"}, "next": "x"}},
        "c2": {"data": [{"id": "4"}], "paging": {"cursors": {"before": "c1", "after": "c3"}}},
    }
    meta = FakeMeta(lambda r: Reply(200, pages[r.query.get("after")]))
    client, _ = make_client(meta)

    items = list(client.paginate(TOKEN, "me/accounts", {"fields": "id,name", "limit": 2}))

    assert [i["id"] for i in items] == ["1", "2", "3", "4"]
    assert [r.query.get("after") for r in meta.sent] == [None, "c1", "c2"]
    assert all(r.query["fields"] == "id,name" and r.query["limit"] == "2" for r in meta.sent)


def test_paginate_uses_paging_next_without_its_access_token():
    leaked_next = f"{GRAPH_URL}/v26.0/77/assigned_pages?access_token={TOKEN}&limit=1&after=zz&appsecret_proof=old"
    answers = [
        Reply(200, {"data": [{"id": "1"}], "paging": {"next": leaked_next}}),
        Reply(200, {"data": [{"id": "2"}], "paging": {}}),
    ]
    meta = FakeMeta(answers)
    client, _ = make_client(meta)

    assert [i["id"] for i in client.paginate(TOKEN, "77/assigned_pages")] == ["1", "2"]
    second = meta.sent[1]
    assert second.path == "/v26.0/77/assigned_pages"
    assert TOKEN not in second.url
    assert second.query["after"] == "zz" and second.query["limit"] == "1"
    assert second.query["appsecret_proof"] != "old"
    assert second.headers["Authorization"] == f"OAuth {TOKEN}"


def test_paginate_refuses_to_send_the_token_to_another_host():
    meta = FakeMeta([Reply(200, {"data": [], "paging": {"next": "https://evil.test/v26.0/me?after=a"}})])
    client, _ = make_client(meta)

    with pytest.raises(OtherGraphError):
        list(client.paginate(TOKEN, "me/accounts"))


def test_paginate_stops_when_meta_repeats_a_cursor():
    page = {"data": [{"id": "1"}], "paging": {"cursors": {"after": "same"}, "next": "x"}}
    meta = FakeMeta(lambda r: Reply(200, page))
    client, _ = make_client(meta)

    assert len(list(client.paginate(TOKEN, "me/accounts"))) == 2
    assert len(meta.sent) == 2


def test_paginate_is_lazy():
    meta = FakeMeta(lambda r: Reply(200, {"data": [{"id": "1"}], "paging": {"cursors": {"after": "a"}, "next": "x"}}))
    client, _ = make_client(meta)

    iterator = client.paginate(TOKEN, "me/accounts")
    next(iterator)

    assert len(meta.sent) == 1


def test_paging_next_under_a_base_path_keeps_the_path_relative_to_the_version():
    base = f"{GRAPH_URL}/simulator/graph"
    answers = [
        Reply(200, {"data": [{"id": "1"}], "paging": {"next": f"{base}/v26.0/me/accounts?after=n1&access_token=x"}}),
        Reply(200, {"data": [{"id": "2"}]}),
    ]
    meta = FakeMeta(answers)
    client, _ = make_client(meta, graph_url=base)

    assert [i["id"] for i in client.paginate(TOKEN, "me/accounts")] == ["1", "2"]
    assert meta.sent[1].path == "/simulator/graph/v26.0/me/accounts"
    assert "access_token" not in meta.sent[1].query
