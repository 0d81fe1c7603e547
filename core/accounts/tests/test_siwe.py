"""Sign-In with Ethereum (EIP-4361): server nonces used once, domain / chain / time checks, the signer
recovered with eth-account; linking a wallet to an email account and an email to a wallet account."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from core.accounts.models import SecurityEvent, SiweNonce, User
from core.accounts.siwe import SiweParseError, siwe_parse
from core.accounts.tests.conftest import Api, Wallet, code_from_mail

pytestmark = pytest.mark.django_db


def signed_in_message(api: Api, wallet: Wallet, path: str = "auth/siwe/nonce") -> str:
    response = api.post(path, {"address": wallet.address})
    assert response.status_code == 200, response.content
    return response.json()["message"]


def sign_in(api: Api, wallet: Wallet, message: str | None = None, signature: str | None = None) -> Any:
    message = message or signed_in_message(api, wallet)
    return api.post("auth/siwe/verify", {"message": message, "signature": signature or wallet.sign(message)})


def test_a_wallet_signs_in_and_gets_a_wallet_account(api: Api, wallet: Wallet) -> None:
    response = sign_in(api, wallet)
    assert response.status_code == 200, response.content
    api.remember(response)
    me = api.get("me").json()
    assert me["wallet_address"] == wallet.address.lower()
    assert me["email"] is None and me["email_verified"] is False
    # the second time, the same account
    again = Api()
    again.remember(sign_in(again, wallet))
    assert again.get("me").json()["id"] == me["id"]
    assert User.objects.filter(wallet_address=wallet.address.lower()).count() == 1


def test_password_guesses_cannot_lock_a_wallet_account_out(api: Api, wallet: Wallet) -> None:
    assert sign_in(api, wallet).status_code == 200
    placeholder = User.objects.get(wallet_address=wallet.address.lower()).email
    for _ in range(5):
        assert Api().login(placeholder, "any-guess-at-all-1").json()["code"] == "INVALID_CREDENTIALS"
    # the guesses lock that address's password sign-ins for that email, as for any email (issue #17)…
    assert Api().login(placeholder, "any-guess-at-all-1").json()["code"] == "ACCOUNT_LOCKED"
    # …never the wallet's own sign-in
    assert sign_in(Api(), wallet).status_code == 200


def test_a_replayed_signature_is_refused(api: Api, wallet: Wallet) -> None:
    message = signed_in_message(api, wallet)
    signature = wallet.sign(message)
    assert sign_in(api, wallet, message, signature).status_code == 200
    replay = sign_in(Api(), wallet, message, signature)
    assert replay.status_code == 401 and replay.json()["code"] == "SIWE_NONCE_INVALID"


def test_a_nonce_the_server_never_issued_is_refused(api: Api, wallet: Wallet) -> None:
    message = signed_in_message(api, wallet)
    forged = message.replace(siwe_parse(message).nonce, "a1b2c3d4e5f6a7b8")
    response = sign_in(api, wallet, forged)
    assert response.json()["code"] == "SIWE_NONCE_INVALID"


def test_a_message_for_another_domain_is_refused(api: Api, wallet: Wallet) -> None:
    message = signed_in_message(api, wallet)
    phishing = message.replace("localhost:8000 wants you", "xbit-login.example wants you", 1)
    response = sign_in(api, wallet, phishing)
    assert response.status_code == 401 and response.json()["code"] == "SIWE_DOMAIN_MISMATCH"
    # the nonce was not spent by the phishing attempt: the genuine message still works
    assert sign_in(api, wallet, message).status_code == 200


def test_an_unsupported_chain_is_refused(api: Api, wallet: Wallet) -> None:
    message = signed_in_message(api, wallet).replace("Chain ID: 1\n", "Chain ID: 56\n")
    assert sign_in(api, wallet, message).json()["code"] == "SIWE_INVALID"


def test_an_expired_message_is_refused(api: Api, wallet: Wallet) -> None:
    parsed = siwe_parse(signed_in_message(api, wallet))
    past = timezone.now().replace(microsecond=0) - timedelta(minutes=1)
    expired = replace(parsed, expiration_time=past).text()
    assert sign_in(api, wallet, expired).json()["code"] == "SIWE_EXPIRED"
    stale = replace(parsed, issued_at=past - timedelta(hours=1), expiration_time=None).text()
    assert sign_in(api, wallet, stale).json()["code"] == "SIWE_EXPIRED"


def test_an_expired_nonce_is_refused(api: Api, wallet: Wallet) -> None:
    message = signed_in_message(api, wallet)
    SiweNonce.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sign_in(api, wallet, message).json()["code"] == "SIWE_NONCE_INVALID"


def test_a_signature_by_another_key_is_refused(api: Api, wallet: Wallet, other_wallet: Wallet) -> None:
    message = signed_in_message(api, wallet)
    response = sign_in(api, wallet, message, other_wallet.sign(message))
    assert response.status_code == 401 and response.json()["code"] == "SIWE_INVALID"
    assert not User.objects.filter(wallet_address=wallet.address.lower()).exists()
    assert sign_in(api, wallet, message, "0x1234").json()["code"] in ("SIWE_INVALID", "SIWE_NONCE_INVALID")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda m: m.replace("wants you to sign in", "asks you to sign in"),
        lambda m: m.replace("Version: 1\n", ""),
        lambda m: m.replace("\nURI:", "\nUri:"),
        lambda m: m.split("\n", 1)[0] + "\n" + m.split("\n", 2)[1].lower() + "\n" + m.split("\n", 2)[2],
    ],
    ids=["header", "missing-version", "tag-case", "not-checksummed"],
)
def test_malformed_messages_are_refused(api: Api, wallet: Wallet, mangle: Any) -> None:
    message = mangle(signed_in_message(api, wallet))
    assert sign_in(api, wallet, message).json()["code"] == "SIWE_INVALID"


def test_the_parser_round_trips_a_full_message() -> None:
    text = "\n".join(
        [
            "https://localhost:8000 wants you to sign in with your Ethereum account:",
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
            "",
            "Sign in to XBIT.",
            "",
            "URI: https://localhost:8000/login",
            "Version: 1",
            "Chain ID: 42161",
            "Nonce: 32891756abcdef01",
            "Issued At: 2026-01-02T03:04:05Z",
            "Expiration Time: 2026-01-02T03:14:05Z",
            "Request ID: r-1",
            "Resources:",
            "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        ]
    )
    parsed = siwe_parse(text)
    assert (parsed.scheme, parsed.domain, parsed.chain_id, parsed.request_id) == (
        "https",
        "localhost:8000",
        42161,
        "r-1",
    )
    assert parsed.text() == text
    without_statement = replace(parsed, statement=None).text()
    assert siwe_parse(without_statement).statement is None
    with pytest.raises(SiweParseError):
        siwe_parse(text.replace("Version: 1\nChain ID: 42161", "Chain ID: 42161\nVersion: 1"))


def test_an_email_account_links_a_wallet_with_a_signed_proof(api_as: Any, wallet: Wallet) -> None:
    trader = api_as()
    message = signed_in_message(trader, wallet, "account/security/wallet/nonce")
    assert "Link this wallet" in message
    response = trader.post("account/security/wallet", {"message": message, "signature": wallet.sign(message)})
    assert response.status_code == 200, response.content
    assert response.json()["wallet_address"] == wallet.address.lower()
    trader.user.refresh_from_db()
    assert trader.user.last_security_change_at is not None, "a new sign-in method starts the withdrawal lock"
    assert SecurityEvent.objects.filter(user=trader.user, kind="wallet_linked").exists()
    # and now the wallet signs in to the same account
    wallet_client = Api()
    wallet_client.remember(sign_in(wallet_client, wallet))
    assert wallet_client.get("me").json()["email"] == trader.user.email


def test_a_wallet_cannot_be_linked_with_someone_elses_nonce_or_twice(api_as: Any, wallet: Wallet) -> None:
    first, second = api_as(), api_as()
    message = signed_in_message(first, wallet, "account/security/wallet/nonce")
    stolen = second.post("account/security/wallet", {"message": message, "signature": wallet.sign(message)})
    assert stolen.json()["code"] == "SIWE_NONCE_INVALID", "a link nonce is bound to the user it was issued to"
    anonymous = sign_in(Api(), wallet, message)
    assert anonymous.json()["code"] == "SIWE_NONCE_INVALID", "and is no sign-in nonce"

    message = signed_in_message(first, wallet, "account/security/wallet/nonce")
    assert (
        first.post(
            "account/security/wallet", {"message": message, "signature": wallet.sign(message)}
        ).status_code
        == 200
    )
    message = signed_in_message(second, wallet, "account/security/wallet/nonce")
    taken = second.post("account/security/wallet", {"message": message, "signature": wallet.sign(message)})
    assert taken.status_code == 409 and taken.json()["code"] == "WALLET_IN_USE"


def test_a_wallet_account_links_an_email_with_a_code(api: Api, wallet: Wallet) -> None:
    api.remember(sign_in(api, wallet))
    user = User.objects.get(wallet_address=wallet.address.lower())
    assert api.post("account/security/email", {"new_email": "Holder@Example.com"}).status_code == 202
    code = code_from_mail("holder@example.com")
    response = api.post("account/security/email/confirm", {"code": code})
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "holder@example.com"
    user.refresh_from_db()
    assert user.email_verified and user.last_security_change_at is not None
    assert SecurityEvent.objects.filter(user=user, kind="email_changed", details__linked=True).exists()
    # with the email linked, a password can be set by reset and the account signs in by email too
    mail.outbox.clear()
    api.post("auth/password/reset", {"email": "holder@example.com"})
    from core.accounts.tests.conftest import NEW_PASSWORD

    confirm = api.post(
        "auth/password/reset/confirm",
        {
            "email": "holder@example.com",
            "code": code_from_mail("holder@example.com"),
            "new_password": NEW_PASSWORD,
        },
    )
    assert confirm.status_code == 200, confirm.content
    assert Api().login("holder@example.com", NEW_PASSWORD).status_code == 200


def test_linking_an_email_that_belongs_to_another_account_reveals_nothing(
    api: Api, wallet: Wallet, make_trader: Any
) -> None:
    owner = make_trader(email="taken@example.com")
    api.remember(sign_in(api, wallet))
    response = api.post("account/security/email", {"new_email": owner.email})
    assert response.status_code == 202
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert "already belongs" in mail.outbox[0].body and not any(c.isdigit() for c in mail.outbox[0].subject)
    assert api.post("account/security/email/confirm", {"code": "123456"}).json()["code"] == "INVALID_CODE"
