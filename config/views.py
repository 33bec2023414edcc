import logging

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, HttpResponseServerError
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.views.decorators.csrf import requires_csrf_token

from .context_processors import portal

logger = logging.getLogger(__name__)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's): the hashed static file."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    """The branded 500 page, with the portal's name and contacts; plain text if even that fails."""
    try:
        return HttpResponseServerError(render_to_string("500.html", portal(request)))
    except Exception:
        logger.exception("The 500 page itself failed to render")
        return HttpResponseServerError("Server error. Please try again later.", content_type="text/plain")
