"""appsecret_proof and the ways Meta accepts a token, over real HTTP."""

import time

from simulator import api
from simulator.tests.conftest import graph_call, live, throwaway_token

pytestmark = live


def error_of(response):
    return response.json()["error"]


def test_a_call_with_the_right_plain_proof_is_answered(meta, http):
    token = api.issue_token()
    response = graph_call(meta, http, "me", token)
    assert response.status_code == 200
    assert response.json()["id"] == api.system_user_id("9100000000000001")


def test_a_wrong_proof_gets_metas_invalid_proof_error(meta, http):
    token = api.issue_token()
    response = http.post(
        meta.graph("me"),
        data={"method": "GET", "appsecret_proof": "0" * 64},
        headers={"Authorization": f"OAuth {token}"},
    )
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["type"]) == (100, "GraphMethodException")
    assert error["message"] == "Invalid appsecret_proof provided in the API argument"
    assert error["fbtrace_id"]


def test_the_trace_id_header_is_the_error_bodys_fbtrace_id(meta, http):
    responses = [graph_call(meta, http, "me", "EAAnotAtokenWeKnow") for _ in range(2)]
    traces = [r.headers["x-fb-trace-id"] for r in responses]
    assert [error_of(r)["fbtrace_id"] for r in responses] == traces
    assert traces[0] != traces[1]


def test_a_successful_answer_carries_a_trace_id_too(meta, http):
    response = graph_call(meta, http, "me", api.issue_token())
    assert response.status_code == 200
    assert len(response.headers["x-fb-trace-id"]) == 11


def test_a_missing_proof_is_refused_when_the_app_requires_it(meta, http):
    token = api.issue_token()
    response = graph_call(meta, http, "me", token, proof=False)
    assert response.status_code == 400
    assert error_of(response)["code"] == 100
    assert error_of(response)["message"] == "API calls from the server require an appsecret_proof argument"


def test_a_missing_proof_is_accepted_when_the_app_does_not_require_it(meta, http):
    api.register_app(meta.app_id, meta.app_secret, [meta.redirect_uri], require_proof=False)
    token = api.issue_token()
    assert graph_call(meta, http, "me", token, proof=False).status_code == 200


def test_a_timestamped_proof_is_accepted_within_five_minutes_and_refused_after(meta, http):
    token = api.issue_token()
    fresh = int(time.time()) - 60
    stale = int(time.time()) - 301
    ok = http.post(
        meta.graph("me"),
        data={"method": "GET", "appsecret_proof": meta.proof(token, fresh), "appsecret_time": fresh},
        headers={"Authorization": f"Bearer {token}"},
    )
    refused = http.post(
        meta.graph("me"),
        data={"method": "GET", "appsecret_proof": meta.proof(token, stale), "appsecret_time": stale},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert ok.status_code == 200
    assert refused.status_code == 400
    assert error_of(refused)["message"] == "Invalid appsecret_proof provided in the API argument"


def test_a_timestamped_proof_signed_without_the_time_is_refused(meta, http):
    token = api.issue_token()
    now = int(time.time())
    response = http.post(
        meta.graph("me"),
        data={"method": "GET", "appsecret_proof": meta.proof(token), "appsecret_time": now},
        headers={"Authorization": f"OAuth {token}"},
    )
    assert response.status_code == 400


def test_the_token_is_accepted_in_the_query_string_and_in_the_post_body(meta, http):
    token = throwaway_token("EAAthrowawayQueryToken0001")
    in_query = http.get(meta.graph("me"), params={"access_token": token, "appsecret_proof": meta.proof(token)})
    in_body = http.post(
        meta.graph("me"), data={"method": "GET", "access_token": token, "appsecret_proof": meta.proof(token)}
    )
    assert in_query.status_code == 200
    assert in_body.status_code == 200
    assert in_query.json() == in_body.json()


def test_a_call_without_any_token_is_refused_with_code_104(meta, http):
    response = http.get(meta.graph("me"))
    assert response.status_code == 400
    assert error_of(response)["code"] == 104


def test_an_unknown_token_is_refused_with_code_190(meta, http):
    response = graph_call(meta, http, "me", "EAAnotAtokenWeKnow")
    assert response.status_code == 400
    assert error_of(response)["code"] == 190


def test_an_expired_token_is_refused_with_subcode_463(meta, http):
    token = api.issue_token(token_type="user")
    api.expire_token(token)
    error = error_of(graph_call(meta, http, "me", token))
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert "Session has expired" in error["message"]


def test_an_invalidated_token_is_refused_with_its_subcode(meta, http):
    token = api.issue_token(token_type="user")
    api.invalidate_token(token, 460)
    error = error_of(graph_call(meta, http, "me", token))
    assert (error["code"], error["error_subcode"]) == (190, 460)
    assert error["error_user_title"] == "Session expired"
    assert "password changed" in error["error_user_msg"]


def test_the_app_token_needs_no_proof(meta, http):
    response = http.post(
        meta.graph(meta.app_id),
        data={"method": "GET"},
        headers={"Authorization": f"OAuth {meta.app_id}|{meta.app_secret}"},
    )
    assert response.status_code == 200
    assert response.json()["id"] == meta.app_id


def test_an_expired_version_is_served_by_the_oldest_live_one(meta, http):
    token = api.issue_token()
    old = http.post(
        meta.graph("me").replace(f"/{meta.version}/", "/v19.0/"),
        data={"method": "GET", "appsecret_proof": meta.proof(token)},
        headers={"Authorization": f"OAuth {token}"},
    )
    current = graph_call(meta, http, "me", token)
    assert old.status_code == 200
    assert old.headers["facebook-api-version"] == "v23.0"
    assert current.headers["facebook-api-version"] == meta.version
