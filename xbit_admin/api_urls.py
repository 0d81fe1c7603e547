"""The trader API under /api/v1/, each app's routes included here. The order routes come first: Django
tries the includes in turn, and every include that does not match builds the list of its patterns it
tried (for the 404 page), which was the order endpoint's URL resolution time."""

from django.urls import include, path

from core.accounts import api as accounts_api

urlpatterns = [
    path("", include("trading.api.trader_urls")),
    path("auth/login", accounts_api.LoginApi.as_view(), name="auth-login"),
    path("auth/refresh", accounts_api.RefreshApi.as_view(), name="auth-refresh"),
    path("me", accounts_api.MeApi.as_view(), name="me"),
    path("api-keys", accounts_api.ApiKeyListCreateApi.as_view(), name="api-keys"),
    path("api-keys/<str:key_id>/revoke", accounts_api.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
    path("", include("core.accounts.api_urls")),
    path("", include("wallets.api.urls")),
    path("", include("routing.api.urls")),
    path("", include("risk.api.urls")),
    path("", include("trading.api.urls")),
]
