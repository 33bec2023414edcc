"""Benchmark of the staff console at a large provider's size (not a test).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h14_bench .venv/bin/python bench/admin.py --seed

Seeds (with ``--seed``; otherwise reuses what an earlier run seeded) 100,000 clients, 300,000
tokens and 1,000,000 asset grants on PostgreSQL, with a contact, five assets, a reminder, an
invitation, a login attempt and three token events per client, straight in SQL (generate_series:
a minute, not hours of ORM saves), then every client's connection health as beat's full recompute
computes it (``tokens.health.refresh_due(everything=True)``, timed), then VACUUM ANALYZE as
autovacuum keeps a live database. Then
it opens every console page staff open (the first screen, a client's page, every changelist's
first page and each of its filters) with Django's test client, signed in with both factors as a
superuser, ``--runs`` times each after one warm-up, and prints the median and the slowest time
and the number of database queries per page. Everything it seeds is deleted first: use a
database of its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")

TABLES = [
    "tokens_tokenevent", "tokens_reminder", "tokens_assetgrant", "tokens_asset", "onboarding_loginattempt",
    "onboarding_invitation", "tokens_accesstoken", "onboarding_contact", "onboarding_clientbusiness",
    "onboarding_loginconfiguration", "tokens_sweeprun", "staffjobs_staffjob", "tokens_clienthealth",
]  # fmt: skip

# One statement per table; %(n)s is the number of clients. Client i (1..n) has: contact i; tokens
# 3i-2 (a user token, live or ended), 3i-1 (the one it superseded), 3i (a system-user token, live
# for two clients in three); assets 5i-4..5i; grants: 4 + 2 + 4 per client = 1,000,000 at 100,000.
SEED_SQL = [
    """INSERT INTO onboarding_loginconfiguration (name, config_id, token_type, variant, permissions, asset_types,
        token_expiry, description, is_active, created_at, updated_at) VALUES
        ('Pages and ads (user)', '510000001', 'user', 'standard', '["pages_show_list","ads_read"]',
         '["page","ad_account"]', 'never', '', true, now(), now()),
        ('Business integration (system user)', '510000002', 'system_user', 'standard',
         '["pages_show_list","ads_read","business_management"]', '["page","ad_account","catalog"]', 'never', '',
         true, now(), now()),
        ('WhatsApp Embedded Signup', '510000003', 'system_user', 'whatsapp_embedded_signup',
         '["whatsapp_business_management"]', '["whatsapp_business_account"]', '60_days', '', true, now(), now())""",
    """INSERT INTO onboarding_clientbusiness (name, meta_business_id, status, notification_emails, notes,
        status_changed_at, created_at, updated_at)
        SELECT 'Client ' || lpad(i::text, 6, '0'), (9100000000000000 + i)::text,
          CASE WHEN i %% 100 < 80 THEN 'active' WHEN i %% 100 < 88 THEN 'needs_reauth' WHEN i %% 100 < 93
               THEN 'invited' WHEN i %% 100 < 96 THEN 'onboarding' WHEN i %% 100 < 99 THEN 'disconnected'
               ELSE 'offboarded' END,
          'ops' || i || '@client.test', '', now() - (i %% 400) * interval '1 day', now(), now()
        FROM generate_series(1, %(n)s) AS i""",
    """INSERT INTO onboarding_contact (name, email, meta_user_id, receives_reminders, created_at, client_id)
        SELECT 'Person ' || i, 'person' || i || '@client.test', (1000000000000000 + i)::text, true, now(), i
        FROM generate_series(1, %(n)s) AS i""",
    """INSERT INTO tokens_accesstoken (kind, value, fingerprint, meta_app_id, meta_user_id, scopes, granular_scopes,
        issued_at, expires_at, data_access_expires_at, status, status_reason, last_checked_at, next_check_at,
        consecutive_check_failures, purpose, created_at, updated_at, client_id, configuration_id, granted_by_id,
        missing_permissions, claim_id, sweep_pending)
        SELECT CASE WHEN t.k = 2 THEN 'system_user' ELSE 'user' END, %(ciphertext)s,
          md5('bench-token-' || (3 * i - 2 + t.k)), '100000000000001', (1000000000000000 + i)::text,
          '["pages_show_list","ads_read"]', '[]', now() - interval '30 days',
          CASE WHEN t.k = 2 THEN NULL ELSE now() + ((i::bigint * 7919) %% 95 - 5) * interval '1 day'
               + (i %% 24) * interval '1 hour' END,
          CASE WHEN t.k = 2 THEN NULL ELSE now() + ((i::bigint * 104729) %% 120 + 1) * interval '1 day' END,
          CASE WHEN t.k = 1 THEN 'superseded'
               WHEN t.k = 2 AND i %% 3 = 0 THEN (CASE WHEN i %% 2 = 0 THEN 'invalid' ELSE 'revoked' END)
               WHEN t.k = 0 AND (i::bigint * 7919) %% 95 < 5 THEN 'invalid'
               WHEN t.k = 0 AND (i::bigint * 7919) %% 95 < 19 THEN 'expiring' ELSE 'active' END,
          '', now() - (i %% 24) * interval '1 hour', now() + (i %% 24) * interval '1 hour', 0, '',
          now() - (3 * %(n)s - (3 * i - 2 + t.k)) * interval '1 second', now(), i, t.k + 1, i, '[]', '', false
        FROM generate_series(1, %(n)s) AS i CROSS JOIN (VALUES (0), (1), (2)) AS t(k)
        ORDER BY i, t.k""",
    """INSERT INTO tokens_asset (kind, meta_id, name, created_at, updated_at, client_id)
        SELECT (ARRAY['page','ad_account','business','page','catalog'])[a.k + 1],
          (3000000000000000 + 5 * i + a.k)::text,
          'Client ' || lpad(i::text, 6, '0') || ' ' || (ARRAY['Page','Ads','Business','Shop page','Catalog'])[a.k + 1],
          now(), now(), i
        FROM generate_series(1, %(n)s) AS i CROSS JOIN generate_series(0, 4) AS a(k) ORDER BY i, a.k""",
    # Live user token: assets 1-4, a fifth with an access end within 60 days; superseded: 1-2; system user: 1-4.
    """INSERT INTO tokens_assetgrant (scopes, user_access_expire_time, status, last_checked_at, created_at, asset_id,
        token_id)
        SELECT '["pages_show_list"]',
          CASE WHEN g.t = 0 AND g.a = 3 AND i %% 5 = 0 THEN now() + ((i * 31) %% 62 - 2) * interval '1 day' END,
          CASE WHEN g.t = 1 THEN 'revoked' WHEN g.t = 0 AND g.a = 3 AND i %% 5 = 0 AND (i * 31) %% 62 < 2 THEN 'ended'
               WHEN g.t = 0 AND g.a = 3 AND i %% 5 = 0 AND (i * 31) %% 62 < 16 THEN 'expiring' ELSE 'active' END,
          now(), now(), 5 * i - 4 + g.a, 3 * i - 2 + g.t
        FROM generate_series(1, %(n)s) AS i
        CROSS JOIN (VALUES (0,0),(0,1),(0,2),(0,3),(1,0),(1,1),(2,0),(2,1),(2,2),(2,4)) AS g(t, a)
        ORDER BY i, g.t, g.a""",
    """INSERT INTO tokens_reminder (subject_key, reason, stage, recipient_email, ends_at, due_at, status, attempts,
        claimed_by, last_error, sent_at, created_at, client_id, token_id, recipient_contact_id)
        SELECT 'token:' || (3 * i - 2), 'token_expiring', '7d', 'person' || i || '@client.test',
          now() + interval '7 days', now() - (i %% 30) * interval '1 day',
          CASE WHEN i %% 10 < 7 THEN 'sent' WHEN i %% 10 < 8 THEN 'failed' WHEN i %% 10 < 9 THEN 'pending'
               ELSE 'cancelled' END,
          1, '', CASE WHEN i %% 10 = 7 THEN 'SMTP 550 mailbox unavailable' ELSE '' END,
          CASE WHEN i %% 10 < 7 THEN now() - (i %% 30) * interval '1 day' END, now(), i, 3 * i - 2, i
        FROM generate_series(1, %(n)s) AS i""",
    """INSERT INTO onboarding_invitation (email, mode, key_hash, created_at, expires_at, sent_at, opened_at,
        completed_at, client_id, contact_id, configuration_id, message)
        SELECT 'person' || i || '@client.test', CASE WHEN i %% 4 = 0 THEN 'reconnect' ELSE 'onboard' END,
          md5('bench-invitation-' || i), now() - (i %% 40) * interval '1 day',
          now() - (i %% 40) * interval '1 day' + interval '14 days', now() - (i %% 40) * interval '1 day',
          CASE WHEN i %% 3 > 0 THEN now() - (i %% 40) * interval '1 day' + interval '1 hour' END,
          CASE WHEN i %% 3 = 2 THEN now() - (i %% 40) * interval '1 day' + interval '2 hours' END, i, i, 1, ''
        FROM generate_series(1, %(n)s) AS i""",
    """INSERT INTO onboarding_loginattempt (state_hash, session_key_hash, mode, created_at, expires_at, outcome,
        error_code, error_reason, error_description, failure_kind, user_agent, is_mobile, client_id, invitation_id,
        configuration_id, token_id)
        SELECT md5('bench-state-' || i), md5('bench-session-' || i), 'onboard',
          now() - (i %% 40) * interval '1 day' + interval '1 hour', now() - (i %% 40) * interval '1 day' + interval
          '75 minutes', CASE WHEN i %% 3 = 2 THEN 'succeeded' WHEN i %% 7 = 0 THEN 'failed' WHEN i %% 7 = 1
          THEN 'cancelled' ELSE 'expired' END, '', '', '', CASE WHEN i %% 3 <> 2 AND i %% 7 = 0 THEN 'access_denied'
          ELSE '' END, 'Mozilla/5.0', i %% 9 = 0, i, i, 1, CASE WHEN i %% 3 = 2 THEN 3 * i - 2 END
        FROM generate_series(1, %(n)s) AS i""",
    """INSERT INTO tokens_tokenevent (kind, actor, message, data, created_at, client_id, token_id)
        SELECT (ARRAY['installed','checked','reminder_sent'])[e.k + 1], 'system',
          (ARRAY['Token installed.','Checked with Meta: still valid.','Reminder sent.'])[e.k + 1], '{}',
          now() - ((3 * %(n)s - (3 * i - 2 + e.k)) * 3) * interval '1 second', i, 3 * i - 2
        FROM generate_series(1, %(n)s) AS i CROSS JOIN generate_series(0, 2) AS e(k) ORDER BY i, e.k""",
    """INSERT INTO tokens_sweeprun (job, status, started_at, finished_at, chunks_total, chunks_done, items_total,
        items_done, errors, totals, last_error, items_deferred, items_expiring, items_invalid, items_unchecked,
        requeues)
        SELECT 'health_sweep', 'finished', now() - i * interval '5 minutes', now() - i * interval '5 minutes'
          + interval '1 minute', 40, 40, 20000, 20000, 0, '{}', '', 0, 0, 0, 0, 0 FROM generate_series(1, 50) AS i""",
    """INSERT INTO staffjobs_staffjob (kind, title, status, target_ids, params, items_total, items_done, outcome,
        result_url, created_at, started_at, finished_at)
        SELECT 'tokens.check_now', 'Check 50 token(s) with Meta', 'finished', '[]', '{}', 50, 50, '[]', '',
          now() - i * interval '1 hour', now() - i * interval '1 hour', now() - i * interval '1 hour'
        FROM generate_series(1, 50) AS i""",
]


def seed(clients: int) -> None:
    from django.db import connection

    from tokens import crypto

    started = time.perf_counter()
    ciphertext = crypto.encrypt("EAAB-bench-token-value-the-same-ciphertext-for-every-row")
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        for statement in SEED_SQL:
            cursor.execute(statement, {"n": clients, "ciphertext": ciphertext})
    print(f"seeded {clients:,} clients in {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    time_health_recompute()
    connection.close()
    with connection.cursor() as cursor:  # VACUUM can't run inside a transaction block
        cursor.execute("VACUUM ANALYZE")


def time_health_recompute() -> None:
    """Every client's connection (beat's daily run, and when the provider's standing changes)."""
    from tokens import health

    started = time.perf_counter()
    result = health.refresh_due(everything=True)
    print(f"connection health of {result['clients']:,} clients recomputed in {time.perf_counter() - started:.1f} s "
          f"(refresh_due(everything=True))")


def time_health_paths(runs: int) -> list[tuple[str, float, float]]:
    """What keeping the health rows costs: beat's 5-minute run, and one client's refresh in a cause's
    transaction (install, revoke, a sweep chunk's clients)."""
    from django.db.models import Count

    from tokens import health
    from tokens.models import AccessToken

    busiest = (AccessToken.objects.values("client_id").annotate(n=Count("pk")).order_by("-n", "client_id")
               .values_list("client_id", flat=True).first())
    chunk = list(AccessToken.objects.order_by("pk").values_list("client_id", flat=True).distinct()[:500])
    rows = []
    for label, call in (("beat, every 5 minutes: refresh_due()", health.refresh_due),
                        ("one client, in its cause's transaction: refresh_clients([id])",
                         lambda: health.refresh_clients([busiest])),
                        ("a sweep chunk's clients (500): refresh_clients(ids)", lambda: health.refresh_clients(chunk))):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
        rows.append((label, statistics.median(times), max(times)))
    return rows


API_HEALTH = ["/api/v1/clients/health", "/api/v1/clients/health?breaks_within_days=7",
              "/api/v1/clients/health?state=needs_reauthorization&limit=500",
              "/api/v1/clients/health?configuration=2&offset=5000", "/api/v1/clients/50001/health"]


def time_api(runs: int) -> list[tuple[str, float, float, int]]:
    """The health endpoints of the API (D28) at this size, with a credential that may read every client."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from api.credentials import create_credential
    from api.models import Scope, ServiceCredential

    ServiceCredential.objects.filter(name="bench health").delete()
    _, secret = create_credential("bench health", [Scope.HEALTH_READ])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    rows = []
    for url in API_HEALTH:
        if client.get(url).status_code != 200:
            raise SystemExit(f"{url} did not answer 200")
        times = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
        rows.append((url, statistics.median(times), max(times), len(queries)))
    return rows


def pages() -> list[str]:
    from onboarding.models import ClientBusiness
    from testsupport.staff import console_pages

    # The first screen, and the page of a client at the start, the middle and the end of the table.
    ids = list(ClientBusiness.objects.order_by("pk").values_list("pk", flat=True))
    clients = [f"/admin/onboarding/clientbusiness/{pk}/change/" for pk in (ids[0], ids[len(ids) // 2], ids[-1])]
    # A bar of the first screen's chart: the tokens and the grants ending in three days.
    from datetime import timedelta

    from django.utils import timezone

    day = (timezone.localdate() + timedelta(days=3)).isoformat()
    bars = [f"/admin/tokens/accesstoken/?ends_within=day:{day}",
            f"/admin/tokens/assetgrant/?access_ends_within=day:{day}"]
    return ["/admin/", *clients, *bars, *console_pages(configuration_id=1)]


def time_snapshot(runs: int) -> tuple[float, float]:
    """The first screen's figures computed from scratch (what beat does every minute)."""
    from console.first_screen import refresh_snapshot

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        refresh_snapshot()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def measure(runs: int) -> list[tuple[str, float, float, int]]:
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from testsupport.staff import sign_in

    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_staff": True,
                                                                                       "is_superuser": True})
    client = sign_in(Client(), user)
    rows = []
    for url in pages():
        response = client.get(url)  # warm-up (and a check that the page works)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        times = []
        for _ in range(runs):
            reset_queries()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
        rows.append((url, statistics.median(times), max(times), len(queries)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", action="store_true", help="delete and seed the data first")
    parser.add_argument("--clients", type=int, default=100_000, help="clients to seed (tokens x3, grants x10)")
    parser.add_argument("--runs", type=int, default=7, help="timed requests per page, after one warm-up")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("bench/admin.py needs DATABASE_URL pointing at a PostgreSQL database of its own")
    if args.seed:
        seed(args.clients)
    from tokens.models import AccessToken, AssetGrant

    print(f"{AccessToken.objects.count():,} tokens, {AssetGrant.objects.count():,} grants; "
          f"{args.runs} runs per page after one warm-up")
    print(f"{'page':<72} {'median ms':>9} {'max ms':>7} {'queries':>7}")
    snapshot_median, snapshot_max = time_snapshot(max(3, args.runs // 2))
    print(f"{'first screen figures (beat, every minute): refresh_snapshot()':<72} {snapshot_median:>9.0f} "
          f"{snapshot_max:>7.0f}")
    for label, median, slowest in time_health_paths(max(3, args.runs // 2)):
        print(f"{label:<72} {median:>9.0f} {slowest:>7.0f}")
    rows = measure(args.runs) + time_api(args.runs)
    for url, median, slowest, queries in rows:
        flag = "  over 300 ms" if median > 300 else ""
        print(f"{url:<72} {median:>9.0f} {slowest:>7.0f} {queries:>7}{flag}")
    print(f"slowest median: {max(row[1] for row in rows):.0f} ms")


if __name__ == "__main__":
    main()
