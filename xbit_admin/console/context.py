from typing import Any

from django.http import HttpRequest

from xbit_admin.console.nav import visible_nav


def console_nav(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}
    verified = getattr(user, "is_verified", lambda: False)()
    return {"console_nav": visible_nav(user) if verified else [], "console_verified": verified}
