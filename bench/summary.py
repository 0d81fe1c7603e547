"""One table of every spec 08 performance figure from ``bench/results/*.json`` (issue #10): figure, goal,
measured, the physical reference measured alongside (raw psycopg, pgbench, the bare SDK), the ratio
measured/goal, and the machine (cores, RAM, load average when that JSON was written). Printed, and
written to ``bench/results/summary.md``. Reads only: run the benchmarks first (``make bench``).

    python bench/summary.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RESULTS

Results = dict[str, dict[str, Any]]


def dig(data: Any, path: str) -> Any:
    """``dig(d, "a.b.0.c")``: nested keys and list indexes; None when any step is missing."""
    for step in path.split("."):
        if isinstance(data, dict):
            data = data.get(step)
        elif isinstance(data, list) and step.lstrip("-").isdigit() and -len(data) <= int(step) < len(data):
            data = data[int(step)]
        else:
            return None
    return data


def ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 1:
        return f"{value:.3f} ms"
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


@dataclass
class Row:
    figure: str
    goal: str
    measured: str
    reference: str
    value: float | None  # in the goal's unit
    target: float | None
    higher_is_better: bool
    source: str  # the results file it comes from

    def ratio(self) -> str:
        if self.value is None or not self.target:
            return "—"
        r = self.value / self.target
        met = r >= 1 if self.higher_is_better else r <= 1
        return f"{r:.2g} {'✓' if met else '✗'}" if r < 0.1 else f"{r:.2f} {'✓' if met else '✗'}"


def machine(results: Results, name: str) -> str:
    data = results.get(name)
    if data is None:
        return "—"
    m = data.get("machine") or {}
    load = m.get("load_average") or data.get("load_average")
    load_text = f", load {load[0]:.1f}" if isinstance(load, list | tuple) and load else ", load n/a"
    return f"{m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB{load_text}, {str(data.get('at', ''))[:10]}"


# ------------------------------------------------------------------------------------------- rows
def references_text(results: Results) -> dict[str, str]:
    ref = results.get("references", {})
    raw = dig(ref, "internal_fill.raw.raw_2_round_trips")
    service = dig(ref, "internal_fill.service")
    pg = {r.get("clients"): r for r in dig(ref, "pgbench.runs") or []}
    text = {"fill": "—", "throughput": "—"}
    pipeline = dig(ref, "internal_fill.raw.raw_pipeline_prepared")
    if raw:
        text["fill"] = (
            f"raw psycopg, same writes, 2 round trips: p50 {ms(raw['p50_ms'])}, p99 {ms(raw['p99_ms'])}"
            + (
                f"; pipelined + prepared: p50 {ms(pipeline['p50_ms'])}, p99 {ms(pipeline['p99_ms'])}"
                if pipeline
                else ""
            )
            + (f" (order_place in that run: p99 {ms(service['p99_ms'])})" if service else "")
        )
    parts = [f"pgbench c={c}: {r['tps']:,.0f} tps" for c, r in sorted(pg.items()) if r.get("tps")]
    if raw:
        parts.append(f"raw fill, 1 connection: {1000 / raw['mean_ms']:,.0f}/s")
    if parts:
        text["throughput"] = "; ".join(parts)
    return text


def rows(results: Results) -> list[Row]:
    tc, hl, risk = (
        results.get("trading_core", {}),
        results.get("hl_execution", {}),
        results.get("risk_core", {}),
    )
    push, rec, recovery = (
        results.get("push_withdrawal", {}),
        results.get("reconciliation", {}),
        results.get("recovery", {}),
    )
    refs = references_text(results)
    out: list[Row] = []

    v = dig(tc, "routing_decision.p99_ms")
    out.append(
        Row(
            "routing decision",
            "≤ 0.1 ms p99",
            f"p99 {ms(v)} (p50 {ms(dig(tc, 'routing_decision.p50_ms'))})",
            "—",
            v,
            0.1,
            False,
            "trading_core",
        )
    )

    v = dig(tc, "internal_order_service.p99_ms")
    out.append(
        Row(
            "internal execution (accept → fill committed)",
            "≤ 5 ms p99",
            f"p99 {ms(v)} (p50 {ms(dig(tc, 'internal_order_service.p50_ms'))})",
            refs["fill"],
            v,
            5,
            False,
            "trading_core",
        )
    )

    v = dig(hl, "added.p99_ms")
    bare = dig(hl, "bare_sdk")
    out.append(
        Row(
            "HL forwarding, added over the bare SDK call",
            "≤ 5 ms p99",
            f"p99 {ms(v)} added (p50 {ms(dig(hl, 'added.p50_ms'))})",
            f"bare SDK order on the sandbox: p50 {ms(bare['p50_ms'])}, p99 {ms(bare['p99_ms'])}"
            if bare
            else "—",
            v,
            5,
            False,
            "hl_execution",
        )
    )

    runs = dig(tc, "http_orders.runs") or []
    server = dig(tc, "http_orders.server") or "?"
    workers = dig(tc, "http_orders.workers")
    for run in runs:
        out.append(
            Row(
                f"API POST /orders, c={run.get('concurrency')} ({server}{f' ×{workers}' if workers else ''})",
                "≤ 20 ms p95 at 200 orders/s",
                f"p95 {ms(run.get('p95_ms'))} at {run.get('orders_per_s')}/s (p50 {ms(run.get('p50_ms'))}, "
                f"p99 {ms(run.get('p99_ms'))}, {run.get('errors', 0)} errors)",
                "—",
                run.get("p95_ms"),
                20,
                False,
                "trading_core",
            )
        )
    best = max((r.get("orders_per_s") or 0 for r in runs), default=None)
    out.append(
        Row(
            "internal orders/s through the HTTP API (best concurrency)",
            "≥ 1,000 orders/s",
            f"{best}/s" if best is not None else "n/a",
            refs["throughput"],
            best,
            1000,
            True,
            "trading_core",
        )
    )

    v = dig(risk, "mark_to_liquidation_committed.p99_ms")
    n = dig(risk, "positions")
    out.append(
        Row(
            f"liquidation detection, {count(n)} open positions (mark → liquidation committed)",
            "≤ 100 ms p99 at 100k positions",
            f"p99 {ms(v)} (p50 {ms(dig(risk, 'mark_to_liquidation_committed.p50_ms'))})",
            "—",
            v,
            100,
            False,
            "risk_core",
        )
    )

    shock = dig(risk, "shock_15pct") or {}
    triggers, took = shock.get("triggers"), shock.get("all_liquidated_s")
    if triggers and took is not None:
        per_10k = took * 10_000 / triggers
        measured = f"{triggers:,} liquidated in {seconds(took)}" + (
            f" → 10,000 at that rate ≈ {seconds(per_10k)}" if triggers != 10_000 else ""
        )
        measured += f" ({shock.get('workers', '?')} workers)"
    else:
        per_10k, measured = None, "n/a"
    out.append(
        Row("flash crash: 10,000 liquidations", "≤ 10 s", measured, "—", per_10k, 10, False, "risk_core")
    )

    v = dig(push, "exposure_push.commit_to_client.p95_ms")
    out.append(
        Row(
            "exposure push: fill committed → console websocket",
            "≤ 250 ms p95",
            f"p95 {ms(v)} (p50 {ms(dig(push, 'exposure_push.commit_to_client.p50_ms'))}; "
            f"relay's share p50 {ms(dig(push, 'exposure_push.outbox_commit_to_stream.p50_ms'))})",
            "—",
            v,
            250,
            False,
            "push_withdrawal",
        )
    )

    w = dig(push, "withdrawal.confirm_to_on_chain")
    v = w["p95_ms"] / 1000 if w else None
    out.append(
        Row(
            "withdrawal < 10k: confirmed → broadcast on chain",
            "≤ 10 s",
            f"p95 {seconds(v)} (p50 {seconds(w['p50_ms'] / 1000)}, n={w['n']})" if w else "n/a",
            "—",
            v,
            10,
            False,
            "push_withdrawal",
        )
    )

    v = dig(rec, "best_full_run_s")
    out.append(
        Row(
            f"reconciliation, full run, {count(dig(rec, 'positions'))} positions",
            "runs every 5 min (spec 04): ≤ 300 s",
            f"best {seconds(v)} of {len(dig(rec, 'full_run_s') or [])}",
            "—",
            v,
            300,
            False,
            "reconciliation",
        )
    )

    v = dig(recovery, "best_wall_s")
    out.append(
        Row(
            f"restart → serving, {count(dig(recovery, 'positions'))} positions",
            "≤ 10 s",
            f"best {seconds(v)} of {len(dig(recovery, 'restarts') or [])} (process start → serving)",
            "—",
            v,
            10,
            False,
            "recovery",
        )
    )
    return out


# ------------------------------------------------------------------------------------------- render
def table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def references_section(results: Results) -> str:
    ref = results.get("references")
    if not ref:
        return ""

    def cpu(p: dict[str, Any]) -> str:
        client, server = p.get("client_cpu_ms_per_fill"), p.get("server_cpu_ms_per_fill")
        return "—" if client is None else f"{client} ms / {server if server is not None else 'n/a'} ms"

    body = []
    service = dig(ref, "internal_fill.service")
    if service:
        body.append(
            [
                "internal fill through order_place (same run)",
                f"p50 {ms(service['p50_ms'])}, p99 {ms(service['p99_ms'])}",
                cpu(service),
            ]
        )
    for shape, p in (dig(ref, "internal_fill.raw") or {}).items():
        body.append(
            [
                f"internal fill, {shape.replace('_', ' ')}",
                f"p50 {ms(p['p50_ms'])}, p99 {ms(p['p99_ms'])}",
                cpu(p),
            ]
        )
    trip = dig(ref, "internal_fill.bare_round_trip")
    if trip:
        body.append(["one round trip (SELECT 1)", f"p50 {ms(trip['p50_ms'])}, p99 {ms(trip['p99_ms'])}", "—"])
    for run in dig(ref, "pgbench.runs") or []:
        body.append(
            [
                f"pgbench tpcb-like, -s 1, -c {run['clients']}, {run['seconds']} s",
                f"{run['tps']:,.0f} tps, latency average {run['latency_avg_ms']} ms",
                "—",
            ]
        )
    pg = ref.get("postgres") or {}
    settings = ", ".join(f"{k} {v}" for k, v in pg.items())
    sql = dig(ref, "internal_fill.service_sql")
    note = (
        f"\nThe service's fill: {sql['round_trips']} round trips, {sql['statements']} statements; the raw "
        "shapes send the same rows. CPU per fill: this process's thread (client) / its PostgreSQL backend "
        "(server), far less inflated by the machine's load than wall time. "
        if sql
        else "\n"
    ) + f"PostgreSQL: {settings}. Machine: {machine(results, 'references')}."
    return (
        "\n\n### Physical references (bench/references.py)\n\n"
        + table(["reference", "wall time", "CPU per fill (client / server)"], body)
        + "\n"
        + note
    )


def web_section(results: Results) -> str:
    web = results.get("web_servers")
    if not web:
        return ""
    body = []
    for server, per_c in (web.get("median") or {}).items():
        for c, m in per_c.items():
            body.append(
                [
                    server,
                    c.lstrip("c"),
                    f"{m['orders_per_s']}",
                    f"{ms(m['p50_ms'])} / {ms(m['p95_ms'])}",
                    str(m["errors"]),
                ]
            )
    return (
        "\n\n### Web server (bench/web_servers.py, one process each, median of "
        f"{web.get('rounds', '?')} rounds)\n\n"
        + table(["server", "clients", "orders/s", "p50 / p95", "errors"], body)
        + f"\n\nFaster: **{web.get('faster', '?')}** (daphne/uvicorn orders/s: {web.get('daphne_over_uvicorn_orders_per_s')}). "
        f"Machine: {machine(results, 'web_servers')}."
    )


def load_results() -> Results:
    results: Results = {}
    for path in sorted(RESULTS.glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"[summary] skipping {path.name}: {exc}", file=sys.stderr)
    return results


def render(results: Results) -> str:
    body = [
        [r.figure, r.goal, r.measured, r.reference, r.ratio(), machine(results, r.source)]
        for r in rows(results)
    ]
    missing = [
        name
        for name in (
            "trading_core",
            "hl_execution",
            "risk_core",
            "references",
            "push_withdrawal",
            "reconciliation",
            "recovery",
        )
        if name not in results
    ]
    text = "## Performance summary (bench/summary.py)\n\n" + table(
        ["figure", "goal (spec 08)", "measured", "reference", "ratio measured/goal", "machine (at the time)"],
        body,
    )
    text += (
        "\n\nratio: measured ÷ goal; ✓ meets the goal (≤ 1 for times, ≥ 1 for throughput). Machine: the "
        "load average (1 min) when that benchmark saved its JSON — on a shared 2-core VM the figures move with it."
    )
    if missing:
        text += f"\n\nNo results yet for: {', '.join(missing)}."
    return text + references_section(results) + web_section(results) + "\n"


def main() -> None:
    text = render(load_results())
    (RESULTS / "summary.md").write_text(text)
    print(text)
    print(f"[bench] wrote {RESULTS / 'summary.md'}")


if __name__ == "__main__":
    main()
