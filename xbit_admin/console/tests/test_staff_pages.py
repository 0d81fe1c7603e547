"""Issue #21, staff management in the console: a Super Admin invites a staff member, sets their roles,
sees and revokes their console sessions, deactivates them, and proposes a TOTP reset that a second
Super Admin approves. Everyone else is refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from conftest import sign_in
from core.accounts.models import StaffProposal, StaffSession, User
from core.accounts.roles import Role
from core.audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_a_super_admin_invites_a_staff_member_with_roles(console_as: Any) -> None:
    admin = console_as(Role.SUPER_ADMIN)
    response = admin.post(
        "/staff/", {"email": "New.Ops@xbit.test", "roles": ["Operations", "Support"], "reason": "new hire"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and "new.ops@xbit.test invited." in html
    password = html.split('id="invite-password">', 1)[1].split("<", 1)[0]
    member = User.objects.get(email="new.ops@xbit.test")
    assert (
        member.is_staff and member.role_names == ["Operations", "Support"] and member.check_password(password)
    )
    entry = AuditEntry.objects.get(action="staff.invite", object_id=str(member.pk))
    assert entry.reason == "new hire" and entry.after == {
        "email": "new.ops@xbit.test",
        "roles": ["Operations", "Support"],
    }
    again = admin.post("/staff/", {"email": "new.ops@xbit.test", "roles": ["Support"], "reason": "x"})
    assert (
        again.status_code == 400
        and "An account with this email exists already. (CONFLICT)" in again.content.decode()
    )
    bad_role = admin.post("/staff/", {"email": "x@xbit.test", "roles": ["Boss"], "reason": "x"})
    assert "Unknown role. (VALIDATION_ERROR)" in bad_role.content.decode()


@pytest.mark.parametrize("role", [Role.RISK_MANAGER, Role.OPERATIONS, Role.SUPPORT, Role.DATA_ANALYST])
def test_only_a_super_admin_manages_staff(role: Role, console_as: Any, make_staff: Any) -> None:
    client = console_as(role)
    member = make_staff(Role.SUPPORT)
    assert client.get("/staff/").status_code == 403
    assert (
        client.post("/staff/", {"email": "x@xbit.test", "roles": ["Support"], "reason": "x"}).status_code
        == 403
    )
    assert (
        client.post(f"/staff/{member.pk}/roles/", {"roles": ["Super Admin"], "reason": "x"}).status_code
        == 403
    )
    assert client.post(f"/staff/{member.pk}/active/", {"reason": "x"}).status_code == 403


def test_roles_change_and_a_deactivated_member_loses_every_session(console_as: Any, make_staff: Any) -> None:
    admin = console_as(Role.SUPER_ADMIN)
    member = make_staff(Role.SUPPORT, email="member@xbit.test")
    browser = sign_in(Client(), member)
    assert browser.get("/users/").status_code == 200
    session = StaffSession.objects.get(user=member)
    page = admin.get(f"/staff/{member.pk}/").content.decode()
    assert f'data-session="{session.pk}"' in page and "live" in page
    admin.post(f"/staff/{member.pk}/roles/", {"roles": ["Data Analyst"], "reason": "moved to analytics"})
    assert User.objects.get(pk=member.pk).role_names == ["Data Analyst"]
    assert browser.get("/users/").status_code == 403  # the new role applies on the next page
    admin.post(f"/staff/{member.pk}/active/", {"active": "0", "reason": "left the company"})
    member.refresh_from_db()
    assert not member.is_active
    assert browser.get("/").status_code == 302  # signed out: the session is gone
    session.refresh_from_db()
    assert session.ended_at is not None and session.ended_by is not None
    assert AuditEntry.objects.filter(action="staff.deactivate", object_id=str(member.pk)).exists()


def test_a_super_admin_revokes_one_session(console_as: Any, make_staff: Any) -> None:
    admin = console_as(Role.SUPER_ADMIN)
    member = make_staff(Role.SUPPORT)
    from django_otp.plugins.otp_totp.models import TOTPDevice

    laptop = sign_in(Client(), member)
    TOTPDevice.objects.filter(user=member).update(last_t=-1)  # the same code again, on a second device
    phone = sign_in(Client(), member)
    first = StaffSession.objects.filter(user=member).order_by("id").first()
    missing = admin.post(f"/staff/sessions/{first.pk}/revoke/", {}, follow=True)
    assert "A reason is required. (VALIDATION_ERROR)" in missing.content.decode()
    admin.post(f"/staff/sessions/{first.pk}/revoke/", {"reason": "laptop lost"})
    assert laptop.get("/").status_code == 302 and phone.get("/").status_code == 200
    assert AuditEntry.objects.get(action="staff.session_revoke").reason == "laptop lost"


def test_a_totp_reset_is_approved_by_a_second_super_admin(console_as: Any, make_staff: Any) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    first = console_as(Role.SUPER_ADMIN)
    member = make_staff(Role.OPERATIONS)
    first.post(f"/staff/{member.pk}/totp-reset/", {"reason": "new phone"})
    proposal = StaffProposal.objects.get(kind="staff_totp_reset", target_user=member)
    own = first.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve"}, follow=True)
    assert "(FOUR_EYES_REQUIRED)" in own.content.decode()
    assert TOTPDevice.objects.filter(user=member).exists()
    second = console_as(Role.SUPER_ADMIN)
    listing = second.get("/proposals/").content.decode()
    assert f'data-proposal="{proposal.pk}"' in listing and "Reset the TOTP of staff member" in listing
    second.post(f"/proposals/{proposal.pk}/decide/", {"decision": "approve"})
    proposal.refresh_from_db()
    assert proposal.status == "APPLIED"
    assert not TOTPDevice.objects.filter(user=member).exists()
    assert AuditEntry.objects.filter(action="staff.totp_reset", object_id=str(member.pk)).exists()
