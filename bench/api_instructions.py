"""The token lookups bench/api_instructions.sh counts: seed, warm up, then N lookups inside sys.call_tracing."""

from __future__ import annotations

import io
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.update(RATE_LIMITS="api=100000000/m,api-ip=100000000/m", LOG_LEVEL="WARNING",
                  DJANGO_ALLOWED_HOSTS="127.0.0.1", DATABASE_CONN_MAX_AGE="600")


def main(count: int) -> None:
    import importlib.util

    import django

    django.setup()
    spec = importlib.util.spec_from_file_location("bench_api", ROOT / "bench" / "api.py")
    bench_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_api)
    ids, secret = bench_api.seed_tokens(2000)
    from config.wsgi import application

    def lookup(meta_id: str) -> None:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": f"/api/v1/assets/{meta_id}/token", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr, "HTTP_AUTHORIZATION": f"Bearer {secret}",
        }  # fmt: skip
        status = []
        b"".join(application(environ, lambda line, headers, exc_info=None: status.append(line)))
        assert status[0].startswith("200"), status

    chooser = random.Random(1)
    for _ in range(100):
        lookup(chooser.choice(ids))

    def counted(n: int) -> None:
        for _ in range(n):
            lookup(chooser.choice(ids))

    sys.call_tracing(counted, (count,))


if __name__ == "__main__":
    main(int(sys.argv[1]))
