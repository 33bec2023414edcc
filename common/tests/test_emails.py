"""common.emails.TemplatedEmails: a shape rendered once and each message's values filled in, or rendered whole."""

import pytest
from django.template import engines

from common import emails
from common.emails import TemplatedEmails, templated_email


@pytest.fixture
def templates(monkeypatch):
    """The three templates of email "test", from strings (``templates[suffix] = source``)."""
    sources = {}
    rendered = []

    def render_to_string(name, context):
        rendered.append(name)
        return engines["django"].from_string(sources[name.removeprefix("emails/test")]).render(context)

    monkeypatch.setattr(emails, "render_to_string", render_to_string)
    return sources, rendered


def context(shape, values):
    name, link = values
    return {"shape": shape, "client": {"name": name}, "link": link}


def whole(shape, values):
    return templated_email("test", context(shape, values), ["a@b.test"])


def parts(email):
    return email.subject, email.body, email.alternatives[0].content


def test_values_are_filled_in_escaped_where_the_template_escapes_them(templates):
    sources, rendered = templates
    sources.update({
        "_subject.txt": "{% autoescape off %}Hello {{ client.name }}{% if shape %}, again{% endif %}"
                        "{% endautoescape %}",
        ".txt": "{% autoescape off %}{{ client.name }} <{{ link }}>{% endautoescape %} {{ client.name }}\n",
        ".html": '{% load i18n %}<a href="{{ link }}">'
                 "{% blocktranslate with c=client.name %}Go, {{ c }}{% endblocktranslate %}</a>",
    })  # fmt: skip
    renderer = TemplatedEmails("test", context)
    names = ["Tom & Jerry's <b>", 'A "quoted"\n  name ', "Zoë", ""]
    for shape in (False, True):
        for name in names:
            values = [name, f"https://x.test/?a=1&b={name}"]
            assert parts(renderer.email(shape, values, ["a@b.test"])) == parts(whole(shape, values))
    # Two shapes: each rendered with markers twice and once whole (its first message's check), 3 templates each;
    # and this test's own whole renders.
    assert len(rendered) == 2 * 3 * 3 + len(names) * 2 * 3
    assert parts(renderer.email(True, ["<i>", "u"], ["a@b.test"])) == (
        "Hello <i>, again", "<i> <u> &lt;i&gt;\n", '<a href="u">Go, &lt;i&gt;</a>'
    )


@pytest.mark.parametrize("html", [
    "{{ client.name|upper }}",  # a filter takes the marker apart
    # A test that a marker passes as the first value does, but not a marker ten times as long.
    "{% if client.name|length > 5 %}long {% endif %}{{ client.name }}",
])  # fmt: skip
def test_a_template_that_does_more_with_a_value_than_print_it_is_rendered_whole(templates, html, caplog):
    sources, _ = templates
    sources.update({"_subject.txt": "Hi", ".txt": "{{ link }}", ".html": html})
    renderer = TemplatedEmails("test", context)
    for name in ("Ana", "Bo", "Carolina"):
        assert parts(renderer.email("s", [name, "l"], ["a@b.test"])) == parts(whole("s", [name, "l"]))
    assert renderer.shapes == {"s": None}
    assert "rendered whole" in caplog.text


def test_a_value_holding_a_nul_is_rendered_whole(templates):
    sources, _ = templates
    sources.update({"_subject.txt": "Hi", ".txt": "{{ client.name }}", ".html": "{{ client.name }}"})
    renderer = TemplatedEmails("test", context)
    email = renderer.email("s", ["\x000&\x00", "l"], ["a@b.test"])
    assert parts(email) == ("Hi", "\x000&amp;\x00", "\x000&amp;\x00")
    assert renderer.shapes == {}
