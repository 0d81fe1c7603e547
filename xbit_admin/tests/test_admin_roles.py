"""Issue #17, finding 2: Django's admin honours the console's permissions (spec 07) for reading, and
only a Super Admin changes anything. The matrix covers every model registered with the admin × every
role: the index lists only what the role may read, the change list and an object's page answer 200 or
403 accordingly, and no role but Super Admin may add, change or delete."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import models
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice

from core.accounts.roles import ROLE_PERMISSIONS, Role

pytestmark = pytest.mark.django_db

SUPER_ADMIN_ONLY = None
# model → the console permission that reveals it (None: Super Admin only). A model registered with
# the admin but missing here fails the matrix: each new registration decides who reads it.
READ_PERMISSION: dict[str, str | None] = {
    "accounts.user": "view_user_data",  # emails, wallets, restrictions: the Users page's data
    "accounts.securityevent": "view_user_data",  # spec 08: security events visible to support
    "accounts.apikey": SUPER_ADMIN_ONLY,  # key ids and allow-lists: a credential's metadata
    "audit.auditentry": "view_audit_log",
    "events.outboxevent": SUPER_ADMIN_ONLY,  # raw domain events carry every user's payloads
    "alerts.alert": "view_console",  # the console's Alerts page is open to every role
    "alerts.delivery": "view_console",
    "auth.group": SUPER_ADMIN_ONLY,  # roles: staff management
    "otp_totp.totpdevice": SUPER_ADMIN_ONLY,  # second factors (their keys)
    "otp_static.staticdevice": SUPER_ADMIN_ONLY,
}


def may_read(role: Role, model: type[models.Model]) -> bool:
    needed = READ_PERMISSION[model._meta.label_lower]
    return role == Role.SUPER_ADMIN or (needed is not None and needed in ROLE_PERMISSIONS[role])


@pytest.fixture
def rows(make_trader: Any, make_staff: Any) -> None:
    """At least one row of each registered model, so the object pages are probed too."""
    from django.db import transaction

    from core.accounts.api_keys import api_key_create
    from core.accounts.security_events import security_event_record
    from core.alerts.models import Alert, Delivery
    from core.audit.services import audit_record
    from core.events.services import outbox_emit

    trader = make_trader()
    api_key_create(user=trader, label="bot", permissions=["read"])
    security_event_record(user=trader, kind="login")
    staff = make_staff(Role.SUPER_ADMIN)
    with transaction.atomic():
        audit_record(action="tests.admin", actor=staff, object_type="user", object_id=trader.pk)
        outbox_emit(topic="tests.admin", aggregate=f"user:{trader.pk}", payload={"email": trader.email})
    alert = Alert.objects.create(rule="tests", subject="admin", severity="P2", message="test alert")
    Delivery.objects.create(alert=alert, channel="slack", action="trigger")
    StaticDevice.objects.create(user=staff, name="backup", confirmed=True)


def test_every_registered_model_has_a_read_rule() -> None:
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered == set(READ_PERMISSION), registered ^ set(READ_PERMISSION)


@pytest.mark.parametrize("role", list(Role))
def test_the_admin_matrix_every_model_by_every_role(role: Role, console_as: Any, rows: None) -> None:
    client: Client = console_as(role)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    failures = []
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        readable = may_read(role, model)
        listed = f'href="/admin/{info[0]}/{info[1]}/"'.encode() in index.content
        changelist = client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code
        expected = 200 if readable else 403
        if listed != readable or changelist != expected:
            failures.append(
                f"{model._meta.label}: listed={listed} changelist={changelist}, expected {expected}"
            )
        row = model._default_manager.first()
        if row is not None:
            page = client.get(reverse("admin:{}_{}_change".format(*info), args=[row.pk])).status_code
            if page != expected:
                failures.append(f"{model._meta.label} #{row.pk}: {page}, expected {expected}")
        if role != Role.SUPER_ADMIN:
            add = client.get(reverse("admin:{}_{}_add".format(*info))).status_code
            if add != 403:
                failures.append(f"{model._meta.label}: the add page answered {add}")
            if row is not None:
                delete = client.post(
                    reverse("admin:{}_{}_delete".format(*info), args=[row.pk]), {"post": "yes"}
                )
                if delete.status_code != 403 or not model._default_manager.filter(pk=row.pk).exists():
                    failures.append(f"{model._meta.label}: delete answered {delete.status_code}")
    assert not failures, f"{role}: " + "; ".join(failures)


def test_a_support_agent_reads_no_audit_log_and_no_api_keys(console_as: Any, rows: None) -> None:
    support = console_as(Role.SUPPORT)
    assert support.get("/admin/audit/auditentry/").status_code == 403
    assert support.get("/admin/accounts/apikey/").status_code == 403
    assert support.get("/admin/accounts/user/").status_code == 200


def test_a_risk_manager_lists_no_trader_emails(console_as: Any, rows: None, make_trader: Any) -> None:
    trader = make_trader(email="private-person@xbit.test")
    risk = console_as(Role.RISK_MANAGER)
    response = risk.get("/admin/accounts/user/")
    assert response.status_code == 403 and trader.email.encode() not in response.content
    assert risk.get(f"/admin/accounts/user/{trader.pk}/change/").status_code == 403


def test_roles_are_super_admin_business(console_as: Any) -> None:
    operations = console_as(Role.OPERATIONS)
    group = Group.objects.get(name=str(Role.SUPPORT))
    assert operations.get(f"/admin/auth/group/{group.pk}/change/").status_code == 403
    admin_client = console_as(Role.SUPER_ADMIN)
    assert admin_client.get(f"/admin/auth/group/{group.pk}/change/").status_code == 200
