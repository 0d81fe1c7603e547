"""The Python client is its own package: it imports no Django and nothing of the server's code, so a
trader installs it with httpx and websockets alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xbit_client"
SERVER_PACKAGES = {"django", "rest_framework", "channels", "core", "trading", "wallets", "routing", "risk"}
SERVER_PACKAGES |= {"xbit_admin", "sandbox", "requests"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_of_the_client_imports_django_or_the_server() -> None:
    sources = [p for p in PACKAGE.rglob("*.py") if "tests" not in p.parts]
    assert len(sources) >= 5
    for path in sources:
        assert not (_imported_roots(path) & SERVER_PACKAGES), path


def test_importing_the_client_loads_no_django() -> None:
    """In a fresh interpreter (nothing else imported): the whole client, streams included."""
    code = (
        "import sys, xbit_client, xbit_client.stream\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in " + repr(sorted(SERVER_PACKAGES)) + ")\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_the_client_signs_exactly_as_the_server_verifies() -> None:
    """Same bytes, same query (in another order, encoded differently): the same signature as the
    server's own function, which the client does not import."""
    sys.path.insert(0, str(ROOT))
    from core.accounts import hmac_auth  # the server's pure signing function (no Django in it)
    from xbit_client.signing import signature

    body = b'{"symbol":"BTC","size":"0.01"}'
    for query in ("", "status=OPEN&symbol=BTC", "symbol=B%20T&status=OPEN,FILLED&a=", "x=%7E~&x=1"):
        ours = signature(
            "s3cret",
            timestamp="1700000000000",
            method="post",
            path="/api/v1/o",
            query_string=query,
            body=body,
        )
        theirs = hmac_auth.sign(
            "s3cret",
            timestamp="1700000000000",
            method="POST",
            path="/api/v1/o",
            query_string=query,
            body=body,
        )
        assert ours == theirs, query
