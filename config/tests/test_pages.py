"""What a person sees on the public side: an icon, a skip link, readable buttons, text marked for translation."""

import re
import struct
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import translation

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
CLIENT_FACING_TEMPLATES = sorted(
    [
        *TEMPLATES.glob("*.html"),
        *(TEMPLATES / "onboarding").glob("*.html"),
        *(TEMPLATES / "emails").glob("invitation*"),
        *(TEMPLATES / "emails").glob("reminder*"),
    ]
)

pytestmark = pytest.mark.django_db


def test_the_favicon_is_served_and_pages_name_it(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").content.decode()
    assert (ROOT / "static" / "favicon.svg").read_text().startswith("<svg")


def test_public_pages_start_with_a_skip_link_to_the_main_content(client):
    page = client.get("/").content.decode()
    assert page.index('class="skip-link" href="#main"') < page.index('id="main"')


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_white_on_the_primary_button_meets_wcag_aa_contrast():
    css = (ROOT / "static" / "css" / "portal.css").read_text()
    brand = re.search(r"--brand:\s*(#[0-9a-fA-F]{6})", css).group(1)
    button = re.search(r"^\.button \{([^}]*)\}", css, re.M).group(1)
    assert "background: var(--brand)" in button and "color: #fff" in button
    assert contrast("#ffffff", brand) >= 4.5
    assert contrast("#ffffff", "#1877f2") < 4.5  # Facebook's blue, which the button had, does not


@pytest.mark.parametrize("path", CLIENT_FACING_TEMPLATES, ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_every_client_facing_sentence_in_templates_is_marked_for_translation(path):
    text = path.read_text()
    text = re.sub(r"{%\s*blocktranslate.*?{%\s*endblocktranslate\s*%}", "", text, flags=re.S)
    text = re.sub(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", "", text, flags=re.S)
    text = re.sub(r"{%.*?%}|{{.*?}}|{#.*?#}", "", text, flags=re.S)
    text = re.sub(r"<(style|script)\b.*?</\1>", "", text, flags=re.S)
    text = re.sub(r"<[^>]*>|&[a-z]+;", "", text)
    leftover = [word for word in re.findall(r"[A-Za-z]{2,}", text)]
    assert leftover == [], f"untranslated text in {path.name}: {' '.join(leftover)}"


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU gettext catalogue (what msgfmt writes), so the test needs no gettext tools."""
    messages = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    keys = sorted(messages)
    ids = [key.encode() for key in keys]
    strs = [messages[key].encode() for key in keys]
    header_size = 7 * 4
    table_size = len(keys) * 8
    ids_start = header_size + 2 * table_size
    strs_start = ids_start + sum(len(item) + 1 for item in ids)
    originals, translations, offset = [], [], ids_start
    for item in ids:
        originals += [len(item), offset]
        offset += len(item) + 1
    offset = strs_start
    for item in strs:
        translations += [len(item), offset]
        offset += len(item) + 1
    data = struct.pack("<7I", 0x950412DE, 0, len(keys), header_size, header_size + table_size, 0, 0)
    data += struct.pack(f"<{len(originals)}I", *originals) + struct.pack(f"<{len(translations)}I", *translations)
    data += b"".join(item + b"\0" for item in ids) + b"".join(item + b"\0" for item in strs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def french(tmp_path):
    write_mo(
        tmp_path / "fr" / "LC_MESSAGES" / "django.mo",
        {
            "Continue with Facebook": "Continuer avec Facebook",
            "Skip to content": "Aller au contenu",
            "Connect %(client)s to %(portal)s": "Connecter %(client)s à %(portal)s",
            "This link isn't valid": "Ce lien n'est pas valide",
            "See the list of Pages you manage.": "Voir la liste des Pages que vous gérez.",
            "Facebook Pages": "Pages Facebook",
        },
    )
    with override_settings(LOCALE_PATHS=[tmp_path], LANGUAGES=[("en", "English"), ("fr", "Français")]):
        yield
    translation.activate("en")


def test_pages_are_translated_when_a_catalogue_exists_and_english_is_the_default(client, french):
    from onboarding.invitations import create_invitation
    from testsupport.factories import make_client, make_configuration

    _, key = create_invitation(make_client(), make_configuration())
    english = client.get(f"/invite/{key}/").content.decode()
    assert "Continue with Facebook" in english and 'lang="en"' in english

    page = client.get(f"/invite/{key}/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Continuer avec Facebook" in page and "Aller au contenu" in page and 'lang="fr"' in page
    # Meta's permission sentences and asset-type names (graph.permissions) are translated too.
    assert "Voir la liste des Pages que vous gérez." in page and "Pages Facebook" in page
    assert "See the list of Pages you manage." in english and "Facebook Pages" in english
    assert "Ce lien n'est pas valide" in client.get("/invite/x.y/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()


def test_emails_are_rendered_in_the_language_asked_for_and_in_english_by_default(french, mailoutbox):
    from common.emails import send_templated_email

    context = {
        "client": {"name": "Acme"}, "portal_name": "Portal", "invitation": {"mode": "new"},
        "url": "https://portal.example.com/invite/k/", "support_email": "s@example.com",
    }  # fmt: skip
    with translation.override("fr"):  # a request in French does not change a default-language email
        assert send_templated_email("invitation", context, ["a@example.com"]) == "Connect Acme to Portal"
    assert send_templated_email("invitation", context, ["a@example.com"], language="fr") == "Connecter Acme à Portal"
