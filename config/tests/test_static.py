"""In production the app serves its own static files (whitenoise) under hashed, cacheable names."""

import pytest
from django.core.management import call_command
from django.templatetags.static import static
from django.test import RequestFactory, override_settings
from whitenoise.middleware import WhiteNoiseMiddleware

MANIFEST = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture
def collected(tmp_path):
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=MANIFEST, DEBUG=False, WHITENOISE_USE_FINDERS=False):
        call_command("collectstatic", "--no-input", "--ignore", "admin", verbosity=0)
        yield tmp_path


def test_whitenoise_serves_a_hashed_static_file_for_a_year_in_production_mode(collected):
    url = static("css/portal.css")
    assert url != "/static/css/portal.css" and url.startswith("/static/css/portal.") and url.endswith(".css")
    middleware = WhiteNoiseMiddleware(lambda request: pytest.fail("whitenoise did not answer"))
    response = middleware(RequestFactory().get(url, HTTP_ACCEPT_ENCODING="gzip"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert "max-age=315360000" in response["Cache-Control"] and "immutable" in response["Cache-Control"]
    assert response["Content-Encoding"] == "gzip"
    body = b"".join(response.streaming_content)
    assert body  # the compressed stylesheet


def test_pages_link_the_hashed_stylesheet_in_production_mode(collected, client, db):
    page = client.get("/").content.decode()
    assert static("css/portal.css") in page and 'href="/static/css/portal.css"' not in page
