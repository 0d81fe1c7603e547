"""``python -m sandbox``: start the local Hyperliquid, webhook receivers, TRON node and Solana RPC in one
process (the EVM chains run on anvil: ``python -m sandbox.evm``).

Each service is an aiohttp application built by ``<service>.server.build_app(seed=..., config=...)``
and served on its own loopback port. When every port is bound, one line is printed::

    SANDBOX READY {"hyperliquid": "http://127.0.0.1:3001", "webhooks": "...", "tron": "...", "solana": "..."}

so a parent process (tests, ``make run``) can wait for it and learn the ports (``--*-port 0`` picks
free ones).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

SERVICES = ("hyperliquid", "webhooks", "tron", "solana")
DEFAULT_PORTS = {"hyperliquid": 3001, "webhooks": 3003, "tron": 3004, "solana": 3005}


def _build(name: str, *, seed: int, config: dict[str, Any]) -> web.Application:
    if name == "hyperliquid":
        from sandbox.hyperliquid.server import build_app
    elif name == "tron":
        from sandbox.tron.server import build_app
    elif name == "solana":
        from sandbox.solana.server import build_app
    else:
        from sandbox.webhooks.server import build_app
    return build_app(seed=seed, config=config)


async def serve(*, host: str, ports: dict[str, int], seed: int, config: dict[str, Any]) -> None:
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    for name in SERVICES:
        app = _build(name, seed=seed, config=config.get(name, {}))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, ports[name], reuse_address=True)
        await site.start()
        bound = runner.addresses[0][1]
        urls[name] = f"http://{host}:{bound}"
        runners.append(runner)
    print("SANDBOX READY " + json.dumps(urls), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in reversed(runners):
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    for name in SERVICES:
        parser.add_argument(f"--{name}-port", type=int, default=DEFAULT_PORTS[name])
    parser.add_argument("--seed", type=int, default=7, help="seed for every random process (default 7)")
    parser.add_argument("--config", type=Path, help="JSON file with one object per service name")
    parser.add_argument(
        "--state-dir", type=Path, help="keep the venues' state here across restarts (make run)"
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the sandbox binds to loopback only")
    config = json.loads(args.config.read_text()) if args.config else {}
    if args.state_dir:
        for name in ("hyperliquid", "tron", "solana"):
            config.setdefault(name, {}).setdefault("state_file", str(args.state_dir / f"{name}.pickle"))
    ports = {name: getattr(args, f"{name}_port") for name in SERVICES}
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(host=args.host, ports=ports, seed=args.seed, config=config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
