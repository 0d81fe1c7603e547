from django.urls import path

from xbit_admin.console import views
from xbit_admin.console.pages import audit, clients, money, risk, routing, staff, state, users
from xbit_admin.console.pages import switches as switches_page
from xbit_admin.console.pages.client_risk import (
    client_group_config_view,
    client_group_override_view,
    client_risk_view,
)

app_name = "console"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("otp/", views.otp_view, name="otp"),
    path("logout/", views.logout_view, name="logout"),
    path("", risk.overview_view, name="overview"),
    # risk (§1, §3-6, §10, §13)
    path("hedge/", risk.hedge_view, name="hedge"),
    path("hedge/manual/", risk.hedge_manual_view, name="hedge_manual"),
    path("liquidations/", risk.liquidations_view, name="liquidations"),
    path("reconciliation/", risk.reconciliation_view, name="reconciliation"),
    path("reconciliation/run", risk.reconciliation_run_view, name="reconciliation_run"),
    path(
        "reconciliation/<str:dimension>/",
        risk.reconciliation_dimension_view,
        name="reconciliation_dimension",
    ),
    path(
        "reconciliation/<str:dimension>/export.csv",
        risk.reconciliation_export_view,
        name="reconciliation_export",
    ),
    path("drift/", risk.drift_view, name="drift"),
    path("client-risk/", client_risk_view, name="client_risk"),
    path("client-risk/override/", client_group_override_view, name="client_group_override"),
    path("client-risk/config/", client_group_config_view, name="client_group_config"),
    path("risk-config/", risk.risk_config_view, name="risk_config"),
    path("breakers/<str:kind>/<str:scope>/reset/", risk.breaker_reset_view, name="breaker_reset"),
    path("breakers/kill-switch/<str:action>/", risk.kill_switch_view, name="kill_switch"),
    path("stress/", risk.stress_view, name="stress"),
    path("stress/export.csv", risk.stress_export_view, name="stress_export"),
    # routing (spec 07 §2)
    path("routing/", routing.routing_view, name="routing"),
    path("routing/<str:asset>/", routing.routing_asset_view, name="routing_asset"),
    path("routing/<str:asset>/mode/", routing.routing_mode_view, name="routing_mode"),
    path("routing/<str:asset>/toggle/", routing.routing_toggle_view, name="routing_toggle"),
    path("switches/", switches_page.switches_view, name="switches"),
    # users (support, §9)
    path("users/", users.users_view, name="users"),
    path("users/<int:user_id>/", users.user_detail_view, name="user_detail"),
    path("users/<int:user_id>/export/<str:section>.csv", users.user_export_view, name="user_export"),
    # the client card's staff actions
    path("users/<int:user_id>/journal.csv", clients.client_journal_export_view, name="client_journal_export"),
    path("users/<int:user_id>/note/", clients.client_note_view, name="client_note"),
    path("users/<int:user_id>/tag/", clients.client_tag_view, name="client_tag"),
    path("users/<int:user_id>/restrict/", clients.client_restrict_view, name="client_restrict"),
    path(
        "users/restrictions/<int:restriction_id>/lift/",
        clients.client_restriction_lift_view,
        name="client_restriction_lift",
    ),
    path("users/<int:user_id>/2fa-reset/", clients.client_2fa_reset_view, name="client_2fa_reset"),
    path("users/<int:user_id>/kyc/", clients.client_kyc_view, name="client_kyc"),
    path(
        "users/<int:user_id>/positions/<int:position_id>/close/",
        clients.client_position_close_view,
        name="client_position_close",
    ),
    path("users/<int:user_id>/adjustments/", clients.client_adjustment_view, name="client_adjustment"),
    path("adjustments/<int:adjustment_id>/decide/", clients.adjustment_decide_view, name="adjustment_decide"),
    path("proposals/", clients.proposals_view, name="proposals"),
    # platform state banner and runbooks
    path("platform-state.json", state.platform_state_view, name="platform_state"),
    path("runbooks/", state.runbooks_view, name="runbooks"),
    path("venue/", state.venue_view, name="venue"),
    path("runbooks/<str:kind>/<str:key>/", state.runbook_view, name="runbook"),
    # staff management
    path("staff/", staff.staff_view, name="staff"),
    path("staff/<int:user_id>/", staff.staff_member_view, name="staff_member"),
    path("staff/<int:user_id>/roles/", staff.staff_roles_view, name="staff_roles"),
    path("staff/<int:user_id>/active/", staff.staff_active_view, name="staff_active"),
    path("staff/<int:user_id>/totp-reset/", staff.staff_totp_reset_view, name="staff_totp_reset"),
    path(
        "staff/sessions/<int:session_id>/revoke/",
        staff.staff_session_revoke_view,
        name="staff_session_revoke",
    ),
    path("proposals/<int:proposal_id>/decide/", clients.proposal_decide_view, name="proposal_decide"),
    # money (§7, §8)
    path("withdrawals/", money.withdrawals_view, name="withdrawals"),
    path(
        "withdrawals/<int:withdrawal_id>/approve/", money.withdrawal_approve_view, name="withdrawal_approve"
    ),
    path("withdrawals/<int:withdrawal_id>/reject/", money.withdrawal_reject_view, name="withdrawal_reject"),
    path("liquidity/", money.liquidity_view, name="liquidity"),
    path("liquidity/aggregate/<str:chain>/", money.aggregation_trigger_view, name="aggregation_trigger"),
    path("liquidity/cold/propose/", money.cold_topup_propose_view, name="cold_topup_propose"),
    path("liquidity/cold/<int:transfer_id>/decide/", money.cold_topup_decide_view, name="cold_topup_decide"),
    # audit log (§12) and alerts (§11)
    path("audit/", audit.audit_view, name="audit"),
    path("audit/export.csv", audit.audit_export_view, name="audit_export"),
    path("audit/verify/", audit.audit_verify_view, name="audit_verify"),
    path("alerts/", audit.alerts_view, name="alerts"),
    path("alerts/<int:alert_id>/ack/", audit.alert_ack_view, name="alert_ack"),
    path("alerts/<int:alert_id>/resolve/", audit.alert_resolve_view, name="alert_resolve"),
]
