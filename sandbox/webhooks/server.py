"""Local receivers for the alert channels: Slack incoming webhooks and PagerDuty Events API v2.

API: ``README.md`` here. Everything received is kept in order and readable via ``/control/messages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_INVALID = {"status": "invalid event", "message": "Event object is invalid"}


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def validate_pagerduty(event: Any, routing_keys: set[str] | None) -> list[str]:
    """Error strings in PagerDuty's style; empty when the event is valid."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if _blank(key):
        errors.append("'routing_key' is missing or blank")
    elif not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif routing_keys is not None and key not in routing_keys:
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if _blank(action):
        errors.append("'event_action' is missing or blank")
    elif action not in PD_ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and _blank(dedup):
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict) or not payload:
            errors.append("'payload' is missing or blank")
        else:
            for name in ("summary", "source", "severity"):
                if _blank(payload.get(name)):
                    errors.append(f"'payload.{name}' is missing or blank")
            severity = payload.get("severity")
            if not _blank(severity) and severity not in PD_SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                )
            summary = payload.get("summary")
            if summary is not None and not isinstance(summary, str):
                errors.append("'payload.summary' must be a string")
    return errors


@dataclass
class FailureRule:
    mode: str  # "error" (not processed) or "hang" (processed, answer delayed)
    remaining: int
    channel: str | None
    status: int
    hang_seconds: float


class WebhooksService:
    def __init__(self, *, seed: int, config: dict[str, Any]):
        self.seed = seed
        slack_paths = config.get("slack_paths")
        keys = config.get("pagerduty_routing_keys")
        self.slack_paths: set[str] | None = {p.strip("/") for p in slack_paths} if slack_paths else None
        self.routing_keys: set[str] | None = set(keys) if keys else None
        self.closing = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        self.messages: list[dict[str, Any]] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.failures: list[FailureRule] = []

    def take_failure(self, channel: str) -> FailureRule | None:
        for rule in self.failures:
            if rule.remaining > 0 and rule.channel in (None, channel):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.failures.remove(rule)
                return rule
        return None

    async def hang(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    async def on_shutdown(self, app: web.Application) -> None:
        self.closing.set()

    def record(
        self, request: web.Request, channel: str, raw: str, body: Any, path: str | None
    ) -> dict[str, Any]:
        entry = {
            "seq": len(self.messages) + 1,
            "channel": channel,
            "path": path,
            "received_at": time.time(),
            "headers": dict(request.headers.items()),
            "raw": raw,
            "body": body,
            "status": None,
            "response": None,
            "injected": None,
        }
        self.messages.append(entry)
        return entry

    async def respond(
        self, entry: dict[str, Any], rule: FailureRule | None, status: int, body: Any, text: bool
    ) -> web.Response:
        entry["status"], entry["response"] = status, body
        if rule is not None:  # mode "hang": processed normally, the answer comes late (or never)
            entry["injected"] = "hang"
            await self.hang(rule.hang_seconds)
        if text:
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/control") and not _is_loopback(request.remote):
            return web.json_response({"error": "the control API answers loopback clients only"}, status=403)
        return await handler(request)

    # --- receivers ------------------------------------------------------------------------------

    async def slack(self, request: web.Request) -> web.Response:
        path = request.match_info["path"].strip("/")
        raw = await request.text()
        body: Any = None
        try:
            if request.content_type == "application/x-www-form-urlencoded":
                body = json.loads(parse_qs(raw).get("payload", [""])[0])
            else:
                body = json.loads(raw)
        except ValueError:
            body = None
        entry = self.record(request, "slack", raw, body, path)
        rule = self.take_failure("slack")
        if rule is not None and rule.mode == "error":
            entry["status"], entry["injected"] = rule.status, "error"
            return web.Response(status=rule.status, text="internal_error")
        if self.slack_paths is not None and path not in self.slack_paths:
            return await self.respond(entry, rule, 404, "no_service", True)
        if not isinstance(body, dict):
            return await self.respond(entry, rule, 400, "invalid_payload", True)
        text, blocks = body.get("text"), body.get("blocks")
        if blocks is not None and not isinstance(blocks, list):
            return await self.respond(entry, rule, 400, "invalid_blocks", True)
        if text is not None and not isinstance(text, str):
            return await self.respond(entry, rule, 400, "invalid_payload", True)
        if _blank(text) and not blocks and not body.get("attachments"):
            return await self.respond(entry, rule, 400, "no_text", True)
        return await self.respond(entry, rule, 200, "ok", True)

    async def pagerduty(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            event: Any = json.loads(raw)
        except ValueError:
            event = None
        entry = self.record(request, "pagerduty", raw, event, None)
        rule = self.take_failure("pagerduty")
        if rule is not None and rule.mode == "error":
            entry["status"], entry["injected"] = rule.status, "error"
            return web.json_response({"status": "error", "message": "injected failure"}, status=rule.status)
        if event is None:
            return await self.respond(entry, rule, 400, {**PD_INVALID, "errors": ["Invalid JSON"]}, False)
        errors = validate_pagerduty(event, self.routing_keys)
        if errors:
            return await self.respond(entry, rule, 400, {**PD_INVALID, "errors": errors}, False)
        dedup = event.get("dedup_key") or f"{self.rng.getrandbits(128):032x}"
        self.apply_incident(event, dedup)
        body = {"status": "success", "message": "Event processed", "dedup_key": dedup}
        return await self.respond(entry, rule, 202, body, False)

    def apply_incident(self, event: dict[str, Any], dedup: str) -> None:
        action = event["event_action"]
        incident = self.incidents.get(dedup)
        if action == "trigger":
            if incident is None or incident["status"] == "resolved":
                payload = event["payload"]
                incident = {
                    "dedup_key": dedup,
                    "status": "triggered",
                    "summary": payload["summary"][:1024],
                    "severity": payload["severity"],
                    "source": payload["source"],
                    "routing_key": event["routing_key"],
                    "opened": 1 + (incident["opened"] if incident else 0),
                    "events": [],
                }
                self.incidents[dedup] = incident
        elif incident is not None and incident["status"] != "resolved":
            incident["status"] = "acknowledged" if action == "acknowledge" else "resolved"
        if incident is not None:
            incident["events"].append(action)

    # --- control --------------------------------------------------------------------------------

    async def c_messages(self, request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        items = [m for m in self.messages if channel is None or m["channel"] == channel]
        return web.json_response({"messages": items})

    async def c_incidents(self, request: web.Request) -> web.Response:
        return web.json_response({"incidents": list(self.incidents.values())})

    async def c_fail(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if (await request.text()).strip() else {}
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            if body.get("clear"):
                self.failures.clear()
                return web.json_response({"failures": []})
            mode = body.get("mode", "error")
            channel = body.get("channel")
            if mode not in ("error", "hang") or channel not in (None, "slack", "pagerduty"):
                raise ValueError("mode is error|hang, channel is slack|pagerduty|null")
            rule = FailureRule(
                mode=mode,
                remaining=int(body.get("count", 1)),
                channel=channel,
                status=int(body.get("status", 500)),
                hang_seconds=float(body.get("hang_seconds", 30)),
            )
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": "invalid_request", "message": str(exc)}, status=400)
        if rule.remaining > 0:
            self.failures.append(rule)
        return web.json_response({"failures": [vars(r) for r in self.failures]})

    async def c_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})


def build_app(*, seed: int, config: dict[str, Any]) -> web.Application:
    """Alert receivers. ``config`` (the "webhooks" section, ``{}`` = accept everything well-formed):
    ``slack_paths`` (list: only these webhook paths exist) and ``pagerduty_routing_keys`` (list)."""
    service = WebhooksService(seed=seed, config=config or {})
    app = web.Application(middlewares=[service.middleware])
    app.on_shutdown.append(service.on_shutdown)
    r = app.router
    r.add_get("/control/messages", service.c_messages)
    r.add_get("/control/incidents", service.c_incidents)
    r.add_post("/control/fail", service.c_fail)
    r.add_post("/control/reset", service.c_reset)
    r.add_post("/slack/{path:.*}", service.slack)
    r.add_post("/pagerduty/v2/enqueue", service.pagerduty)
    return app
