from simulator import api
from simulator.tests.conftest import graph_call


def test_me_answers_with_the_system_users_business(meta, http):
    token = api.issue_token(business_id="9100000000000001")
    response = graph_call(meta, http, "me", token, data={"fields": "id,name,client_business_id"})
    assert response.status_code == 200, response.text
    assert response.json()["client_business_id"] == "9100000000000001"
