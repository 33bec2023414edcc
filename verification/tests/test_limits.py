"""System users per business against the access level's limit (1 + 1 admin standard, 10 + 1 advanced)."""

import pytest

from testsupport.factories import make_client, make_token
from verification.limits import system_user_usage, system_users_allowed, system_users_remaining
from verification.models import MarketingAccessLevel

pytestmark = pytest.mark.django_db


def test_the_seeded_levels_carry_metas_limits():
    standard = MarketingAccessLevel.objects.get(level="standard")
    advanced = MarketingAccessLevel.objects.get(level="advanced")
    assert (standard.total_system_users, advanced.total_system_users) == (2, 11)
    assert standard.is_current


def test_remaining_system_users_follow_the_current_level():
    assert system_users_remaining(1) == 1
    assert system_users_remaining(2) == 0
    MarketingAccessLevel.objects.update(is_current=False)
    MarketingAccessLevel.objects.filter(level="advanced").update(is_current=True)
    assert system_users_allowed() == 11
    assert system_users_remaining(2) == 9


def test_without_a_current_level_the_lowest_limit_is_assumed():
    MarketingAccessLevel.objects.update(is_current=False)
    assert system_users_allowed() == 2


def test_usage_counts_distinct_live_system_users_per_client_and_warns_before_the_limit():
    full = make_client("Full Ltd")
    make_token(client=full, kind="system_user", meta_user_id="su1", scopes=[])
    make_token(client=full, kind="granular_system_user", meta_user_id="su1", scopes=[],
               parent=make_token(client=full, kind="system_user", meta_user_id="su2", scopes=[], status="superseded"))
    make_token(client=full, kind="system_user", meta_user_id="su3", scopes=[])
    roomy = make_client("Roomy Ltd")
    make_token(client=roomy, kind="system_user", meta_user_id="su9", scopes=[])
    make_token(client=roomy, kind="user", meta_user_id="person", scopes=[])

    usage = {u.client_name: u for u in system_user_usage()}
    assert (usage["Full Ltd"].in_use, usage["Full Ltd"].headroom) == (2, 0)
    assert "adding one will exceed it" in usage["Full Ltd"].warning
    assert (usage["Roomy Ltd"].in_use, usage["Roomy Ltd"].headroom, usage["Roomy Ltd"].warning) == (1, 1, "")


def test_a_business_over_the_limit_is_named():
    client = make_client("Over Ltd")
    for n in range(3):
        make_token(client=client, kind="system_user", meta_user_id=f"su{n}", scopes=[])
    [usage] = system_user_usage()
    assert usage.headroom == -1
    assert usage.warning == "Over Ltd has 3 system users, over the 2 allowed."


def test_a_warning_for_one_client_is_available_to_other_apps():
    from verification.limits import system_user_warning

    full, roomy = make_client("Full Ltd"), make_client("Roomy Ltd")
    make_token(client=full, kind="system_user", meta_user_id="a", scopes=[])
    make_token(client=full, kind="system_user", meta_user_id="b", scopes=[])
    assert "at its limit" in system_user_warning(full.pk)
    assert system_user_warning(roomy.pk) == ""
