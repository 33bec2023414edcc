"""Benchmark of the provider's API against the local simulator (not a test).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python bench/api.py --part proxy --calls 2000

Parts (``--part``; each is one function, ``run_<part>``, reporting a dict of figures):

- ``proxy``: the Graph proxy's added latency. The simulator runs under gunicorn (as in
  ``bench/sweep.py``), the portal under gunicorn too (``config.wsgi``, its Graph URL pointing at the
  simulator, Redis as cache and ledger). One client alternates the same Graph read straight to the
  simulator (token and ``appsecret_proof`` as the portal sends them) and through
  ``/api/v1/graph/...`` (bearer credential, ``X-Portal-Asset``), one call at a time, so both see the
  same machine; median and p99 of each and of the difference. Then the database queries of one
  proxied call, counted in this process for several assets and a batch (they must not vary).
- ``token``: requests/s of ``GET /api/v1/assets/{id}/token``. The portal under gunicorn against
  PostgreSQL (and Redis for the rate-limit counters, limits set out of reach); ``--assets`` assets,
  each granted to a user token and to a system-user token of its client (plus a granular one for
  every tenth, asked for by purpose); ``--clients`` client processes of ``--threads`` concurrent
  connections each (asyncio, plain HTTP) ask for random assets for ``--seconds``. Every answer
  must be a 200 with the system-user token.
  Then the database queries of one lookup, counted in this process for a few assets (they must not
  vary).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/api.py --part token --seconds 20

Everything the benchmark seeds is deleted first: use a database of its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on the path, where this file would stand for the portal's `api` app.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"] + [str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")

ACME = "9100000000000001"
# The benchmark measures the proxy, not the API's request budget.
UNLIMITED = "api=100000000/m,api-ip=100000000/m"
os.environ["RATE_LIMITS"] = UNLIMITED  # in this process too (its test-client requests), whatever Redis still counts


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def start_portal(port: int, graph_url: str, workers: int, worker_class: str = "sync",
                 threads: int = 1) -> subprocess.Popen:
    import requests

    env = {
        **os.environ,
        "META_GRAPH_URL": graph_url,
        "RATE_LIMITS": UNLIMITED,
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_CONN_MAX_AGE": "600",  # one connection kept per worker, as a deployment keeps it
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", f"--workers={workers}", f"--worker-class={worker_class}",
         f"--threads={threads}", "--preload", "--max-requests=0",
         f"--bind=127.0.0.1:{port}", "config.wsgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("The portal did not start.")


def seed(graph_root: str):
    """The simulator's world, Acme's system-user token installed in the portal, a proxy credential."""
    from django.conf import settings

    from api.credentials import create_credential
    from api.models import ApiUse, Scope, ServiceCredential
    from simulator import api
    from testsupport.factories import install_simulated_token, make_client
    from tokens.models import AccessToken, Asset, AssetGrant, TokenEvent

    settings.META_GRAPH_URL = graph_root
    ApiUse.objects.all().delete()
    ServiceCredential.objects.all().delete()
    for model in (TokenEvent, AssetGrant):
        model.objects.all().delete()
    AccessToken.objects.filter(parent__isnull=False).delete()
    AccessToken.objects.all().delete()
    Asset.objects.all().delete()
    from django.apps import apps

    for model in ("Invitation", "LoginAttempt", "ClientBusiness", "LoginConfiguration"):
        apps.get_model("onboarding", model).objects.all().delete()
    api.reset()
    api.seed_world()
    api.register_app(settings.META_APP_ID, settings.META_APP_SECRET, [f"{settings.PORTAL_BASE_URL}/connect/callback/"])

    class Meta:  # what install_simulated_token needs of the simulated_meta fixture
        pass

    meta = Meta()
    meta.api = api
    acme = make_client("Acme Bakery", meta_business_id=ACME)
    token = install_simulated_token(meta, acme, token_type="system_user")
    pages = list(Asset.objects.filter(kind="page").order_by("meta_id").values_list("meta_id", flat=True))
    _, secret = create_credential("bench proxy", [Scope.GRAPH_PROXY])
    return token.value, pages, secret


def count_queries(pages: list[str], secret: str) -> list[int]:
    """Queries of one proxied call, for several assets and a batch, in this process (Django's test client)."""
    import json

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    counts = []
    for page in pages[:3]:
        with CaptureQueriesContext(connection) as queries:
            answer = client.get(f"/api/v1/graph/{page}", {"fields": "id,name"}, HTTP_X_PORTAL_ASSET=page)
        assert answer.status_code == 200, answer.content[:200]
        counts.append(len(queries))
    batch = json.dumps([{"method": "GET", "relative_url": f"{page}?fields=id"} for page in pages[:3]])
    with CaptureQueriesContext(connection) as queries:
        answer = client.post("/api/v1/graph/", {"batch": batch}, HTTP_X_PORTAL_ASSET=pages[0])
    assert answer.status_code == 200, (dict(answer.headers), answer.content[:300])
    counts.append(len(queries))
    return counts


def layer_cpu(page: str, secret: str, calls: int) -> dict[str, float]:
    """CPU ms per proxied call spent in each layer, in this process (Django's test client, no profiler)."""
    import collections
    import functools

    from django.test import Client

    import api.audit
    import api.auth
    from graph.client import GraphClient
    from tokens import proxy

    spent: collections.Counter = collections.Counter()
    patched = []

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*a, **k):
            started = time.process_time()
            try:
                return original(*a, **k)
            finally:
                spent[label] += time.process_time() - started

        patched.append((owner, name, original))
        setattr(owner, name, wrapper)

    timed(proxy, "forward_call", "tokens.proxy.forward_call, all of it")
    timed(proxy.selection, "working_token", "  tokens.selection.working_token")
    timed(GraphClient, "forward", "  GraphClient.forward (requests, to Meta)")
    timed(proxy.meta_throttle, "blocked", "  meta_throttle.blocked")
    timed(api.auth.credentials, "find_credential", "api: credential lookup")
    timed(api.auth, "count_and_read", "api: rate limits (per address and per secret) and change marker, one round trip")
    timed(api.audit, "record", "api: audit row")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    try:
        for _ in range(30):
            client.get(f"/api/v1/graph/{page}", {"fields": "id"}, HTTP_X_PORTAL_ASSET=page)
        spent.clear()
        started = time.process_time()
        for _ in range(calls):
            client.get(f"/api/v1/graph/{page}", {"fields": "id"}, HTTP_X_PORTAL_ASSET=page)
        total = time.process_time() - started
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)
    return {"the whole request (test client)": 1000 * total / calls} | {
        label: 1000 * seconds / calls for label, seconds in spent.items()
    }


def run_proxy(args) -> dict:
    import django
    import requests

    django.setup()
    from django.conf import settings
    from sweep import _process_cpu_s, free_port, start_simulator

    from simulator import core

    sim_port, portal_port = free_port(), free_port()
    simulator = start_simulator(sim_port, "gunicorn", args.server_workers)
    portal = None
    try:
        graph_root = f"http://127.0.0.1:{sim_port}/simulator/graph"
        value, pages, secret = seed(graph_root)
        page = pages[0]
        queries = count_queries(pages, secret)
        layers = layer_cpu(page, secret, min(args.calls, 300))
        portal = start_portal(portal_port, graph_root, args.server_workers, args.server_class, args.server_threads)
        version = settings.META_GRAPH_VERSION
        direct_session, proxy_session = requests.Session(), requests.Session()
        proof = core.appsecret_proof(settings.META_APP_SECRET, value)
        direct_url = f"{graph_root}/{version}/{page}"
        proxy_url = f"http://127.0.0.1:{portal_port}/api/v1/graph/{page}"
        params = {"fields": "id,name,category"}

        def direct() -> requests.Response:
            return direct_session.get(
                direct_url, params={**params, "appsecret_proof": proof},
                headers={"Authorization": f"OAuth {value}"}, timeout=30,
            )  # fmt: skip

        def proxied() -> requests.Response:
            return proxy_session.get(
                proxy_url, params=params, headers={"Authorization": f"Bearer {secret}", "X-Portal-Asset": page},
                timeout=30,
            )  # fmt: skip

        for _ in range(args.warmup):
            direct(), proxied()
        direct_ms, proxy_ms = [], []
        portal_cpu, meta_cpu, load = _process_cpu_s(portal.pid), _process_cpu_s(simulator.pid), os.getloadavg()[0]
        for _ in range(args.calls):
            for call, out in ((direct, direct_ms), (proxied, proxy_ms)):
                started = time.perf_counter()
                answer = call()
                out.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text[:200]
        portal_cpu, meta_cpu = _process_cpu_s(portal.pid) - portal_cpu, _process_cpu_s(simulator.pid) - meta_cpu
        assert proxied().content == direct().content  # the same bytes
        overhead = [p - d for p, d in zip(proxy_ms, direct_ms, strict=True)]
        return {
            "calls": args.calls,
            "direct median ms": statistics.median(direct_ms),
            "direct p99 ms": percentile(direct_ms, 99),
            "proxy median ms": statistics.median(proxy_ms),
            "proxy p99 ms": percentile(proxy_ms, 99),
            "overhead median ms": statistics.median(proxy_ms) - statistics.median(direct_ms),
            "overhead p99 ms": percentile(proxy_ms, 99) - percentile(direct_ms, 99),
            "paired overhead median ms": statistics.median(overhead),
            "portal CPU ms per proxied call": 1000 * portal_cpu / args.calls,
            "simulator CPU ms per call": 1000 * meta_cpu / (2 * args.calls),
            "load average (start, end)": f"{load:.1f}, {os.getloadavg()[0]:.1f}",
            "queries per proxied call (2 Pages, a batch)": queries,
        } | {f"CPU ms/call in-process: {label}": value for label, value in layers.items()}
    finally:
        for process in (portal, simulator):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def seed_tokens(assets: int) -> tuple[list[str], str]:
    """Clients of 20 assets each, a user token and a system-user token on every asset; a reading credential."""
    from api.credentials import create_credential
    from api.models import ApiUse, Scope, ServiceCredential
    from testsupport.factories import make_client, make_configuration
    from tokens.models import AccessToken, Asset, AssetGrant, TokenEvent

    ApiUse.objects.all().delete()
    ServiceCredential.objects.all().delete()
    TokenEvent.objects.all().delete()
    AssetGrant.objects.all().delete()
    AccessToken.objects.filter(parent__isnull=False).delete()
    AccessToken.objects.all().delete()
    Asset.objects.all().delete()
    from django.apps import apps

    for model in ("Invitation", "LoginAttempt", "ClientBusiness", "LoginConfiguration"):
        apps.get_model("onboarding", model).objects.all().delete()
    user_configuration, system_configuration = make_configuration("user"), make_configuration("system_user")
    ids = []
    for first in range(0, assets, 20):
        client = make_client(f"Client {first}")
        user = AccessToken.objects.create(client=client, configuration=user_configuration, kind="user",
                                          value=f"EAAB-bench-user-{first}", scopes=["pages_show_list", "ads_read"])
        system = AccessToken.objects.create(client=client, configuration=system_configuration, kind="system_user",
                                            value=f"EAAB-bench-system-{first}", scopes=["pages_show_list", "ads_read"])
        granular = AccessToken.objects.create(client=client, configuration=None, kind="granular_system_user",
                                              parent=system, purpose="publishing", value=f"EAAB-bench-gran-{first}",
                                              scopes=["pages_show_list"])
        batch = [Asset(client=client, kind="page", meta_id=str(400_000_000 + n), name=f"Page {n}")
                 for n in range(first, min(first + 20, assets))]
        Asset.objects.bulk_create(batch)
        AssetGrant.objects.bulk_create([AssetGrant(token=token, asset=asset) for asset in batch
                                        for token in (user, system)]
                                       + [AssetGrant(token=granular, asset=asset) for asset in batch[::10]])
        ids += [asset.meta_id for asset in batch]
    _, secret = create_credential("bench token reader", [Scope.TOKENS_READ])
    from django.db import connection

    if connection.vendor == "postgresql":  # the planner's statistics, as a live database has them
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE tokens_asset, tokens_assetgrant, tokens_accesstoken, api_servicecredential")
    return ids, secret


def count_lookup_queries(ids: list[str], secret: str) -> list[int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.get(f"/api/v1/assets/{ids[0]}/token")  # last_used_at written: the next minute's lookups don't
    counts = []
    for meta_id, purpose in ((ids[1], None), (ids[len(ids) // 2], None), (ids[0], "publishing")):
        with CaptureQueriesContext(connection) as queries:
            answer = client.get(f"/api/v1/assets/{meta_id}/token", {"purpose": purpose} if purpose else {})
        assert answer.status_code == 200, answer.content[:200]
        counts.append(len(queries))
    return counts


def _token_client(args_tuple) -> tuple[int, list[float], int]:
    """One client process: ``connections`` concurrent requests for random assets until the deadline.

    Plain HTTP/1.1 over asyncio streams, a connection per request (gunicorn's sync workers close
    each one): a load generator far cheaper than ``requests`` in threads, whose CPU would be taken
    from the same two cores the portal and PostgreSQL run on.
    """
    import asyncio
    import json
    import random
    from urllib.parse import urlsplit

    url, secret, ids, connections, seconds, seed, keep_alive = args_tuple
    cpu_started = time.process_time()
    where = urlsplit(url)
    latencies: list[float] = []
    errors = [0]

    closing = "" if keep_alive else "Connection: close\r\n"

    def request_for(chooser: random.Random) -> bytes:
        return (f"GET /api/v1/assets/{chooser.choice(ids)}/token HTTP/1.1\r\nHost: {where.netloc}\r\n"
                f"Authorization: Bearer {secret}\r\n{closing}\r\n").encode()

    def check(head: bytes, body: bytes) -> None:
        if not head.startswith(b"HTTP/1.1 200 ") or json.loads(body)["kind"] != "system_user":
            errors[0] += 1

    async def one(chooser: random.Random) -> None:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(request_for(chooser))
        answer = await reader.read(-1)
        writer.close()
        latencies.append((time.perf_counter() - started) * 1000)
        head, _, body = answer.partition(b"\r\n\r\n")
        check(head, body)

    async def kept(chooser: random.Random, deadline: float) -> None:
        """Requests one after another on one kept-alive connection (a server that keeps it: gthread workers)."""
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request_for(chooser))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":", 1)[1] for line in head.lower().split(b"\r\n")
                              if line.startswith(b"content-length:")))
            body = await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            check(head, body)
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.close()

    async def worker(n: int, deadline: float) -> None:
        chooser = random.Random(seed * 1000 + n)
        if keep_alive:
            await kept(chooser, deadline)
            return
        while time.monotonic() < deadline:
            await one(chooser)

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(worker(n, deadline) for n in range(connections)))

    asyncio.run(main())
    return len(latencies), latencies, errors[0], time.process_time() - cpu_started


def _database_backends() -> list[int]:
    """The PostgreSQL backends connected to this database (the portal's workers keep theirs open), not ours."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [pid for (pid,) in cursor.fetchall()]


def run_token(args) -> dict:
    import multiprocessing

    import django
    import requests

    django.setup()
    from sweep import _machine_busy_s, _process_cpu_s, free_port

    ids, secret = seed_tokens(args.assets)
    queries = count_lookup_queries(ids, secret)
    port = free_port()
    portal = start_portal(port, "http://127.0.0.1:9/unused", args.server_workers, args.server_class,
                          args.server_threads)
    try:
        url = f"http://127.0.0.1:{port}"
        for meta_id in ids[: args.warmup]:  # a connection each, so every worker connects to the database
            assert requests.get(f"{url}/api/v1/assets/{meta_id}/token", timeout=30, headers={
                "Authorization": f"Bearer {secret}", "Connection": "close"}).status_code == 200
        jobs = [(url, secret, ids, args.threads, args.seconds, n, args.keep_alive) for n in range(args.clients)]
        backends = _database_backends()
        database_cpu = sum(_process_cpu_s(pid) for pid in backends)
        portal_cpu, busy, load = _process_cpu_s(portal.pid), _machine_busy_s(), os.getloadavg()[0]
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            results = pool.map(_token_client, jobs)
        elapsed = time.perf_counter() - started
        portal_cpu, load = _process_cpu_s(portal.pid) - portal_cpu, (load + os.getloadavg()[0]) / 2
        busy = _machine_busy_s() - busy
        database_cpu = sum(_process_cpu_s(pid) for pid in backends) - database_cpu
    finally:
        portal.terminate()
        portal.wait(timeout=30)
    requests_done = sum(done for done, _, _, _ in results)
    latencies = [value for _, values, _, _ in results for value in values]
    per_lookup = 1000 / max(requests_done, 1)
    return {
        "assets": len(ids),
        "gunicorn workers": args.server_workers,
        "client processes x connections": f"{args.clients} x {args.threads}",
        "lookups": requests_done,
        "errors": sum(errors for _, _, errors, _ in results),
        "lookups per second": requests_done / elapsed,
        "median ms": statistics.median(latencies),
        "p99 ms": percentile(latencies, 99),
        "portal CPU ms per lookup (gunicorn processes)": portal_cpu * per_lookup,
        f"PostgreSQL CPU ms per lookup ({len(backends)} backends of the workers)": database_cpu * per_lookup,
        "load generator CPU ms per lookup": sum(cpu for _, _, _, cpu in results) * per_lookup,
        "the whole machine's busy CPU ms per lookup (everyone's)": busy * per_lookup,
        "load average during the run": load,
        "queries per lookup (3 assets, one by purpose)": queries,
    }


PARTS = {"proxy": run_proxy, "token": run_token}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--calls", type=int, default=2000, help="measured calls of each kind")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--server-workers", type=int, default=2, help="gunicorn workers of each server")
    parser.add_argument("--assets", type=int, default=2000, help="token: assets seeded")
    parser.add_argument("--seconds", type=float, default=20.0, help="token: how long the clients ask")
    parser.add_argument("--clients", type=int, default=1, help="token: client processes")
    parser.add_argument("--threads", type=int, default=8, help="token: concurrent connections per client process")
    parser.add_argument("--server-class", choices=["sync", "gthread"], default="sync",
                        help="gunicorn worker class of the portal (sync, as gunicorn.conf.py deploys it, closes each "
                             "connection; gthread keeps them alive)")
    parser.add_argument("--server-threads", type=int, default=1,
                        help="gunicorn threads per worker of the portal (gthread)")
    parser.add_argument("--keep-alive", action=argparse.BooleanOptionalAction, default=None,
                        help="token: each connection kept for all its requests, as a service's HTTP client does "
                             "(default: with gthread; sync workers close every connection)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each part, then the median of each figure")
    args = parser.parse_args()
    if args.keep_alive is None:
        args.keep_alive = args.server_class == "gthread"
    for name, run in PARTS.items():
        if args.part not in (name, "all"):
            continue
        runs = []
        for attempt in range(1, args.repeat + 1):
            figures = {"calibration loop CPU s (the machine's speed now; lower is faster)": calibration()}
            figures |= run(args)
            runs.append(figures)
            print(f"== {name}" + (f" (run {attempt} of {args.repeat})" if args.repeat > 1 else ""))
            for key, value in figures.items():
                print(f"{key:70} {value:.2f}" if isinstance(value, float) else f"{key:70} {value}")
        if args.repeat > 1:
            print(f"== {name}: median of {args.repeat} runs (and each run)")
            for key, value in runs[0].items():
                if isinstance(value, float):
                    each = [figures[key] for figures in runs]
                    print(f"{key:70} {statistics.median(each):.2f}  ({', '.join(f'{v:.2f}' for v in each)})")


def calibration() -> float:
    """CPU seconds of a fixed pure-Python loop: this VM runs the same code up to 2x slower from one
    hour to the next, so runs are compared with this beside them (docs/benchmarks.md)."""
    started = time.process_time()
    sum(i * i for i in range(5 * 10**6))
    return time.process_time() - started


if __name__ == "__main__":
    main()
