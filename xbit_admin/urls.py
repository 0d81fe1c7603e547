from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core import health
from core.accounts.pages import account_unlock_view
from core.admin_site import XbitAdminSite
from wallets.pages import withdrawal_confirm_view

admin.site.__class__ = XbitAdminSite
handler404 = "core.errors.page_not_found"  # JSON under /api/

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("api/v1/", include("xbit_admin.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the split view serves its script as a file: the Content-Security-Policy allows no inline script
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
    # pages the account emails link to (the token is the credential; the button acts, not the link)
    path("account/unlock", account_unlock_view, name="account-unlock"),
    path("withdrawals/confirm", withdrawal_confirm_view, name="withdrawal-confirm-page"),
    path("", include("xbit_admin.console.urls")),
]
