import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from onboarding.models import ClientBusiness
from tokens import crypto
from tokens.crypto import TokenDecryptionError
from tokens.models import AccessToken

TOKEN = "EAAGm0PX4ZCpsBAKtestTOKENvalue1234567890abcdef"
NEW_KEY = "a-brand-new-field-encryption-key-of-enough-length"


@pytest.fixture
def token(db):
    client = ClientBusiness.objects.create(name="Acme Bakery")
    return AccessToken.objects.create(client=client, kind=AccessToken.Kind.SYSTEM_USER, value=TOKEN)


def raw_value(token_id: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM tokens_accesstoken WHERE id = %s", [token_id])
        return bytes(cursor.fetchone()[0])


def test_the_raw_column_holds_ciphertext_and_the_orm_reads_the_token_back(token):
    raw = raw_value(token.pk)
    assert TOKEN.encode() not in raw
    assert TOKEN[-12:].encode() not in raw
    assert AccessToken.objects.get(pk=token.pk).value == TOKEN


def test_the_same_token_encrypts_differently_each_time(token):
    assert crypto.encrypt(TOKEN) != crypto.encrypt(TOKEN)


def test_a_secret_key_change_leaves_tokens_readable(token):
    with override_settings(SECRET_KEY="a-completely-different-secret-key-" * 2):
        crypto.cipher_for.cache_clear()
        assert AccessToken.objects.get(pk=token.pk).value == TOKEN


def test_a_wrong_field_key_fails_loudly_without_revealing_anything(token):
    with (
        override_settings(FIELD_ENCRYPTION_KEY="the-wrong-key-entirely-xxxxxxxxxxxxxx"),
        pytest.raises(TokenDecryptionError) as excinfo,
    ):
        AccessToken.objects.get(pk=token.pk)
    assert TOKEN not in str(excinfo.value)
    assert "FIELD_ENCRYPTION_KEY" in str(excinfo.value)


def test_tampered_ciphertext_is_rejected_not_returned(token):
    raw = bytearray(raw_value(token.pk))
    raw[30] ^= 0x01
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tokens_accesstoken SET value = %s WHERE id = %s", [bytes(raw), token.pk])
    with pytest.raises(TokenDecryptionError):
        AccessToken.objects.get(pk=token.pk)


def test_the_fingerprint_is_keyed_and_not_the_token(token):
    assert token.fingerprint == crypto.fingerprint(TOKEN)
    assert TOKEN not in token.fingerprint
    assert crypto.fingerprint(TOKEN, key=NEW_KEY) != token.fingerprint


def test_a_previous_key_stays_readable_during_rotation(token):
    with override_settings(FIELD_ENCRYPTION_KEY=NEW_KEY, FIELD_ENCRYPTION_PREVIOUS_KEYS=[crypto_key()]):
        assert AccessToken.objects.get(pk=token.pk).value == TOKEN


def crypto_key() -> str:
    from django.conf import settings

    return settings.FIELD_ENCRYPTION_KEY


def test_rotation_re_encrypts_every_token_and_they_stay_readable(token):
    old_key = crypto_key()
    second = AccessToken.objects.create(client=token.client, kind=AccessToken.Kind.USER, value=TOKEN + "2")
    before = {token.pk: raw_value(token.pk), second.pk: raw_value(second.pk)}

    call_command("rotate_field_encryption_key", old_key=old_key, new_key=NEW_KEY, batch_size=1)

    for pk, raw in before.items():
        assert raw_value(pk) != raw
    with override_settings(FIELD_ENCRYPTION_KEY=NEW_KEY):
        assert AccessToken.objects.get(pk=token.pk).value == TOKEN
        assert AccessToken.objects.get(pk=second.pk).value == TOKEN + "2"
        assert AccessToken.objects.get(pk=token.pk).fingerprint == crypto.fingerprint(TOKEN)
    with pytest.raises(TokenDecryptionError):
        AccessToken.objects.get(pk=token.pk)


def test_rotation_with_a_wrong_old_key_changes_nothing(token):
    before = raw_value(token.pk)
    with pytest.raises(CommandError, match="do not decrypt under the old key"):
        call_command("rotate_field_encryption_key", old_key="not-the-old-key-xxxxxxxxxxxxxxxx", new_key=NEW_KEY)
    assert raw_value(token.pk) == before
    assert AccessToken.objects.get(pk=token.pk).value == TOKEN


def test_rotation_can_be_resumed_after_an_interruption(token):
    old_key = crypto_key()
    call_command("rotate_field_encryption_key", old_key=old_key, new_key=NEW_KEY)
    after_first = raw_value(token.pk)
    call_command("rotate_field_encryption_key", old_key=old_key, new_key=NEW_KEY)
    assert raw_value(token.pk) == after_first


def test_the_check_command_counts_unreadable_tokens_and_changes_nothing(token, capsys):
    call_command("check_token_encryption")
    assert "1 under the current key" in capsys.readouterr().out

    with connection.cursor() as cursor:
        foreign = crypto.encrypt("EAAsomeothertoken", key="some-other-key-xxxxxxxxxxxxxxxxxxx")
        cursor.execute("UPDATE tokens_accesstoken SET value = %s WHERE id = %s", [foreign, token.pk])
    with pytest.raises(CommandError, match="1 token"):
        call_command("check_token_encryption")
    assert raw_value(token.pk) == foreign


def test_the_admin_never_shows_a_token_value(token, admin_client):
    for url in (f"/admin/tokens/accesstoken/{token.pk}/change/", "/admin/tokens/accesstoken/"):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert TOKEN not in response.content.decode()
    assert TOKEN[-4:] in admin_client.get(f"/admin/tokens/accesstoken/{token.pk}/change/").content.decode()
