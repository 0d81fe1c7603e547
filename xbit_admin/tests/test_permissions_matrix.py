"""Role × endpoint matrix: every console page and staff endpoint answers 200 to a role that holds its
permission and 403 to one that does not. The matrix is built from the URL conf, so a new page is
covered the moment it is added."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from core.accounts.roles import ROLE_PERMISSIONS, Role

pytestmark = pytest.mark.django_db


def _guarded_views() -> list[tuple[str, tuple[str, ...]]]:
    found: list[tuple[str, tuple[str, ...]]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                perms = getattr(p.callback, "staff_permissions", None)
                route = prefix + str(p.pattern)
                if perms is not None and "<" not in route:
                    found.append(("/" + route, perms))

    walk(get_resolver().url_patterns, "")
    return found


GUARDED = _guarded_views()


def test_the_matrix_is_not_empty() -> None:
    assert ("/", ("view_console",)) in GUARDED


@pytest.mark.parametrize("role", list(Role))
def test_each_role_sees_exactly_the_pages_its_permissions_allow(role: Role, console_as: Any) -> None:
    client: Client = console_as(role)
    for url, perms in GUARDED:
        allowed = not perms or any(p in ROLE_PERMISSIONS[role] for p in perms)
        response = client.get(url)
        # allowed: the page (200), or an action endpoint saying what it needs — a POST (405) or its
        # input (400, e.g. an export without its parameters); refused: always 403
        expected = (200, 400, 405) if allowed else (403,)
        assert response.status_code in expected, (role, url, response.status_code)


def test_staff_without_a_verified_device_reach_nothing(make_staff: Any) -> None:
    from conftest import PASSWORD

    user = make_staff(Role.SUPER_ADMIN)
    client = Client()
    client.post("/login/", {"email": user.email, "password": PASSWORD})
    for url, _perms in GUARDED:
        assert client.get(url).status_code == 302, url


def test_anonymous_visitors_are_sent_to_sign_in(db: Any) -> None:
    for url, _perms in GUARDED:
        response = Client().get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_the_navigation_only_lists_permitted_pages(console_as: Any) -> None:
    client = console_as(Role.SUPPORT)
    html = client.get("/").content.decode()
    assert "Overview" in html
    for label in ["Routing", "Hedge", "Audit log", "Risk config"]:
        assert f">{label}<" not in html
