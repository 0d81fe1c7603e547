"""The dev stack (issue #16), with real servers and real processes: a second checkout never uses the
first one's PostgreSQL or Redis (nor a foreign program on their ports) and says whose they are; an
interrupted command — a signal while the servers start or while they serve — leaves nothing running;
parallel users of one checkout's servers share them and the last one out stops them; orphans of a killed
honcho are stopped; and the Celery worker and beat are quiet under the `make run` settings, verbose on
request, JSON under the production settings.

Every "checkout" here is a temporary directory with its own ``.xbit/`` on free ports, so nothing touches
the fixed ports of a `make run` or `make test` in progress."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xbit_admin import devstack

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _checkout(root: Path, pg_port: int, redis_port: int) -> devstack.Profile:
    return devstack.Profile("t", root / ".xbit" / "pg", pg_port, root / ".xbit" / "redis", redis_port, False)


def _own_services_env() -> dict[str, str]:
    """The environment without this test run's DATABASE_URL / REDIS_URL: devstack starts its own."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _nothing_running(profile: devstack.Profile) -> bool:
    return not (
        devstack.pg_running(profile)
        or devstack.redis_running(profile)
        or devstack._port_open(profile.pg_port)
        or devstack._port_open(profile.redis_port)
    )


WATCHDOG = textwrap.dedent(
    """
    import os, shutil, sys, time
    from pathlib import Path
    from xbit_admin import devstack
    parent, root = int(sys.argv[1]), Path(sys.argv[2])
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(1)
    for pidfile in root.glob("**/postmaster.pid"):
        devstack.pg_stop(devstack.Profile("t", pidfile.parent, 0, root / "none", 0, False))
    for pidfile in root.glob("**/redis.pid"):
        devstack.redis_stop(devstack.Profile("t", root / "none", 0, pidfile.parent, 0, False))
    shutil.rmtree(root, ignore_errors=True)
    """
)


@contextlib.contextmanager
def _scratch(name: str) -> Iterator[Path]:
    """A directory for a throw-away checkout, outside pytest's temporary root (pytest makes that private
    at each run, and the embedded PostgreSQL runs as another user when we are root); a watchdog stops
    its servers and deletes it if this test process is killed before its clean-up."""
    root = Path(tempfile.mkdtemp(prefix=f"xbit-devstack-{name}-"))
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(root)],
        cwd=ROOT,
        env=_own_services_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield root
    finally:
        watchdog.kill()
        watchdog.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with _scratch("test") as root:
        yield root


@pytest.fixture(scope="module")
def first() -> Iterator[devstack.Profile]:
    """Checkout A with its PostgreSQL (initialised once for the module) and Redis running."""
    with _scratch("checkout-a") as root:
        profile = _checkout(root, _free_port(), _free_port())
        try:
            devstack.pg_start(profile)
            devstack.redis_start(profile)
            yield profile
        finally:
            devstack.cmd_stop([profile])


# ------------------------------------------------------------------ two checkouts


def test_a_second_checkout_refuses_the_first_ones_servers_and_says_whose(
    first: devstack.Profile, scratch: Path
) -> None:
    devstack.pg_start(first)  # its own servers: used
    devstack.redis_start(first)
    second = _checkout(scratch / "checkout-b", first.pg_port, first.redis_port)
    checkout_a = str(first.pg_dir.parent.parent)

    with pytest.raises(devstack.PortTaken) as pg:
        devstack.pg_start(second)
    assert str(first.pg_dir) in str(pg.value) and f"`make stop` in {checkout_a}" in str(pg.value)
    assert "DATABASE_URL" in str(pg.value)
    with pytest.raises(devstack.PortTaken) as redis:
        devstack.redis_start(second)
    assert str(first.redis_dir) in str(redis.value) and f"`make stop` in {checkout_a}" in str(redis.value)
    assert not second.pg_dir.exists(), "nothing was initialised for the second checkout"

    # the command that runs `make run` / `make test` refuses the same way, and starts nothing
    script = (
        "import sys; from pathlib import Path; from xbit_admin import devstack\n"
        f"profile = devstack.Profile('t', Path({str(second.pg_dir)!r}), {second.pg_port}, "
        f"Path({str(second.redis_dir)!r}), {second.redis_port}, False)\n"
        "try:\n"
        "    with devstack.services(profile, stop_when_done=True): print('SERVICES-USED')\n"
        "except devstack.PortTaken as exc: print('REFUSED', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_own_services_env(),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "REFUSED" in out and "SERVICES-USED" not in out and str(first.pg_dir) in out, out

    # `make stop` in the second checkout leaves the first one's servers alone, and says so
    assert devstack.cmd_stop([second]) == 0
    assert devstack.pg_running(first) and devstack.redis_running(first)
    assert devstack.pg_owner(first.pg_port) == str(first.pg_dir)


def test_a_foreign_program_on_a_port_is_named(scratch: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        profile = _checkout(scratch, port, _free_port())
        started = time.monotonic()
        with pytest.raises(devstack.PortTaken) as taken:
            devstack.pg_start(profile)
        assert time.monotonic() - started < 15
        assert f"port {port} is taken by pid {os.getpid()}" in str(taken.value)
        # the web / sandbox ports of `make run` are checked the same way
        problems = devstack._port_problems({port: "the web console and API", _free_port(): "free"})
        assert len(problems) == 1, problems
        assert problems[0].startswith(
            f"port {port} (the web console and API) is already taken by pid {os.getpid()} ("
        )
        assert f"working directory {Path.cwd()}" in problems[0]


# ------------------------------------------------------------------ interruptions

USER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from xbit_admin import devstack
    root, pg, redis = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    profile = devstack.Profile("t", root / ".xbit" / "pg", pg, root / ".xbit" / "redis", redis, False)
    devstack.interrupt_on_signals()
    try:
        with devstack.services(profile, stop_when_done=True, own_database=sys.argv[4]):
            print("UP", flush=True)
            time.sleep(120)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
    """
)


def _user(profile: devstack.Profile, own_database: str = "test_xbit_child") -> subprocess.Popen[str]:
    root = profile.pg_dir.parent.parent
    return subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-c",
            USER,
            str(root),
            str(profile.pg_port),
            str(profile.redis_port),
            own_database,
        ],
        cwd=ROOT,
        env=_own_services_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _read_until(proc: subprocess.Popen[str], marker: str, seen: list[str], seconds: float = 60) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"no {marker!r} in {''.join(seen)}")


@pytest.fixture(scope="module")
def third() -> Iterator[devstack.Profile]:
    """A checkout whose cluster exists (initialised once) but is stopped."""
    with _scratch("checkout-c") as root:
        profile = _checkout(root, _free_port(), _free_port())
        try:
            devstack.pg_start(profile)
            devstack.cmd_stop([profile])
            yield profile
        finally:
            devstack.cmd_stop([profile])


@pytest.mark.parametrize(
    ("moment", "signum"),
    [
        ("starting embedded PostgreSQL", signal.SIGTERM),  # pg_ctl start in progress
        ("starting embedded Redis", signal.SIGHUP),  # PostgreSQL up, Redis starting
        ("UP", signal.SIGINT),
        ("UP", signal.SIGHUP),  # the terminal closed
    ],
)
def test_an_interrupted_command_leaves_no_server_running(
    third: devstack.Profile, moment: str, signum: int
) -> None:
    assert _nothing_running(third)
    proc = _user(third)
    seen: list[str] = []
    try:
        _read_until(proc, moment, seen)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(seen) + out
    assert "INTERRUPTED" in output and "Traceback" not in output, output
    assert _until(lambda: _nothing_running(third), 5), output


def test_a_redis_start_interrupted_before_its_daemon_listens_leaves_no_redis_behind(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal lands while redis-server is forking its daemon: the clean-up runs before the daemon
    listens or writes its pid file, and must still stop it (CI saw one left running)."""
    profile = _checkout(scratch, _free_port(), _free_port())
    monkeypatch.delenv("REDIS_URL", raising=False)  # this run's own Redis is not the one under test
    real_run = subprocess.run
    started: list[subprocess.Popen[bytes]] = []

    def interrupted_run(args: list[str], **kwargs: object) -> object:
        if "redis-server" in str(args[0]):
            started.append(subprocess.Popen(args))  # it forks its daemon; the interrupt comes first
            raise KeyboardInterrupt
        return real_run(args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(devstack.subprocess, "run", interrupted_run)
    try:
        with pytest.raises(KeyboardInterrupt), devstack.services(profile, stop_when_done=True):
            pass
        monkeypatch.undo()
        assert started and started[0].wait(10) == 0
        # nothing comes up afterwards either
        assert not _until(
            lambda: devstack.redis_running(profile) or devstack._port_open(profile.redis_port), 2
        )
    finally:
        monkeypatch.undo()
        devstack.cmd_stop([profile])


def test_parallel_users_share_the_servers_and_the_last_one_out_stops_them(third: devstack.Profile) -> None:
    assert _nothing_running(third)
    a, b = _user(third, "test_xbit_a"), None
    try:
        _read_until(a, "UP", [])
        b = _user(third, "test_xbit_b")
        seen_b: list[str] = []
        _read_until(b, "UP", seen_b)
        assert not any("starting" in line for line in seen_b), "the second user reuses the servers"

        a.send_signal(signal.SIGTERM)
        out_a, _ = a.communicate(timeout=60)
        assert "still used by another command of this checkout" in out_a, out_a
        assert devstack.pg_running(third) and devstack.redis_running(third)

        b.send_signal(signal.SIGTERM)
        out_b, _ = b.communicate(timeout=60)
        assert "stopping embedded PostgreSQL" in out_b, out_b
        assert _until(lambda: _nothing_running(third), 5)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()


def test_clients_of_other_test_runs_keep_the_test_cluster_up(first: devstack.Profile) -> None:
    import psycopg

    devstack.pg_start(first)
    url = f"postgresql://postgres@127.0.0.1:{first.pg_port}"
    with psycopg.connect(f"{url}/postgres", autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS test_xbit_777_gw0")
        admin.execute("CREATE DATABASE test_xbit_777_gw0")
    with psycopg.connect(f"{url}/test_xbit_777_gw0"):  # this run's own database: not another run
        assert not devstack._others_connected(first, "test_xbit_777")
        with psycopg.connect(f"{url}/xbit"):  # e.g. a run started without devstack
            assert devstack._others_connected(first, "test_xbit_777")
    assert not devstack._others_connected(first, "test_xbit_777")


ORPHANS = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from xbit_admin import devstack
    from pathlib import Path
    devstack._prctl(devstack._PR_SET_CHILD_SUBREAPER, 1)
    # a database server that daemonises while we are a subreaper becomes our child: never stopped here
    redis = devstack.Profile("t", Path(sys.argv[1]) / "pg", 0, Path(sys.argv[1]) / "redis", int(sys.argv[2]), False)
    devstack.redis_start(redis)
    # a "honcho" that starts a long-running process in a session of its own, as honcho does
    honcho = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
        "print(p.pid, flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    grandchild = int(honcho.stdout.readline())
    honcho.kill(); honcho.wait()
    time.sleep(0.2)
    found = devstack.end_children(grace=5)
    import psutil
    try:
        alive = psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    server_up = devstack.redis_running(redis)
    devstack.redis_stop(redis)
    print("RESULT", grandchild, found, alive, server_up, flush=True)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_CHILD_SUBREAPER is Linux's")
def test_processes_left_by_a_killed_honcho_are_stopped_and_only_those(scratch: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", ORPHANS, str(scratch), str(_free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    grandchild, found, alive, server_up = out.split("RESULT ", 1)[1].rsplit(" ", 3)
    assert f"[{grandchild}]" == found and alive == "False", out
    assert server_up.strip() == "True", out


# ------------------------------------------------------------------ logging


def _settings_levels(**env: str) -> dict[str, list[int]]:
    script = (
        "import django, json, logging; django.setup()\n"
        "names = ['celery.beat', 'celery.worker.strategy', 'celery.app.trace', 'trading.feed', "
        "'risk.breakers', 'core.alerts.notifications', 'kombu.connection', 'django.request']\n"
        "levels = {n: [logging.getLogger(n).isEnabledFor(l) for l in (logging.INFO, logging.WARNING)] for n in names}\n"
        "levels['handlers'] = [sum(not isinstance(h, logging.NullHandler) for h in logging.getLogger(n).handlers)"
        " for n in ('', 'django', 'celery')]\n"
        "print(json.dumps(levels))\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "LOG_JSON")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "xbit_admin.settings.local", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_make_run_settings_are_quiet_and_verbose_on_request() -> None:
    quiet = _settings_levels()
    for name in (
        "celery.beat",
        "celery.worker.strategy",
        "celery.app.trace",
        "kombu.connection",
        "django.request",
    ):
        assert quiet[name] == [False, True], name  # no INFO, warnings yes
    for name in ("trading.feed", "risk.breakers", "core.alerts.notifications"):
        assert quiet[name] == [True, True], name  # the platform's own INFO messages stay
    assert quiet["handlers"] == [1, 0, 0], "one handler (the root's): every line once, formatted alike"
    verbose = _settings_levels(LOG_LEVEL="info")
    verbose.pop("handlers")
    assert all(levels == [True, True] for levels in verbose.values()), verbose


@pytest.fixture
def private_redis(scratch: Path) -> Iterator[devstack.Profile]:
    profile = _checkout(scratch, 0, _free_port())
    devstack.redis_start(profile)
    yield profile
    devstack.redis_stop(profile)


def _celery(
    redis_profile: devstack.Profile, args: list[str], settings: str, until: Callable[[], bool], **env: str
) -> str:
    """Runs ``celery -A xbit_admin …`` until ``until()`` holds (bounded), then stops it; its output."""
    import redis

    url = f"redis://127.0.0.1:{redis_profile.redis_port}/0"
    if settings.endswith("production"):
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_", "PROMETHEUS"))}
        base.update(_env_example())
    else:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LOG_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "xbit_admin", *args],
        cwd=ROOT,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": settings,
            "REDIS_URL": url,
            "CELERY_BROKER_URL": url,
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/unused",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _until(lambda: until() or proc.poll() is not None, 60)
        reached = until()
        time.sleep(1.0)  # lines logged right after the condition
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    redis.Redis.from_url(url).flushdb()
    assert reached, f"celery {args[0]} did not do its work:\n{out}"
    return out


def _env_example() -> dict[str, str]:
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _queued(redis_profile: devstack.Profile, queue: str) -> Callable[[], bool]:
    import redis

    client = redis.Redis(port=redis_profile.redis_port)
    return lambda: bool(client.llen(queue))


@pytest.mark.slow
def test_beat_ticks_are_silent_under_make_run_verbose_on_request_and_json_in_production(
    private_redis: devstack.Profile, scratch: Path
) -> None:
    schedule = ["beat", "-s", str(scratch / "beat-schedule")]
    # the Procfile's beat (no -l): ticks happen (tasks reach the queue), nothing is printed for them
    quiet = _celery(private_redis, schedule, "xbit_admin.settings.local", _queued(private_redis, "critical"))
    assert "Sending due task" not in quiet, quiet
    # even an explicit -l WARNING was overridden before; still quiet
    quiet_l = _celery(
        private_redis,
        [*schedule, "-l", "WARNING"],
        "xbit_admin.settings.local",
        _queued(private_redis, "critical"),
    )
    assert "Sending due task" not in quiet_l, quiet_l

    verbose = _celery(
        private_redis,
        schedule,
        "xbit_admin.settings.local",
        _queued(private_redis, "critical"),
        LOG_LEVEL="INFO",
    )
    assert "Sending due task risk.liquidation_sweep" in verbose, verbose

    production = _celery(
        private_redis,
        [*schedule, "-l", "INFO"],
        "xbit_admin.settings.production",
        _queued(private_redis, "critical"),
        LOG_LEVEL="INFO",
    )
    records = [json.loads(line) for line in production.splitlines() if line.startswith("{")]
    ticks = [r for r in records if r.get("logger") == "celery.beat" and "Sending due task" in r["event"]]
    assert ticks and all(r["level"] == "info" for r in ticks), production
    assert not [
        line for line in production.splitlines() if "Sending due task" in line and not line.startswith("{")
    ]


@pytest.mark.slow
def test_worker_task_lines_are_silent_under_make_run_and_verbose_on_request(
    private_redis: devstack.Profile,
) -> None:
    import redis

    client = redis.Redis(port=private_redis.redis_port)
    url = f"redis://127.0.0.1:{private_redis.redis_port}/0"

    def worker(**env: str) -> str:
        from celery import Celery

        sender = Celery(broker=url)
        sender.send_task("celery.accumulate", args=(1, 2), queue="default")
        assert client.llen("default") == 1

        def done() -> bool:  # consumed and acknowledged
            return client.llen("default") == 0 and client.hlen("unacked") == 0

        return _celery(
            private_redis,
            [
                "worker",
                "-Q",
                "default",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
            ],
            "xbit_admin.settings.local",
            done,
            **env,
        )

    quiet = worker()
    assert "celery.accumulate" not in quiet and "succeeded in" not in quiet, quiet
    verbose = worker(LOG_LEVEL="INFO")
    assert "Task celery.accumulate[" in verbose and "received" in verbose and "succeeded in" in verbose, (
        verbose
    )


def test_make_run_and_make_test_bring_back_the_chart_library() -> None:
    for target in ("run", "test"):
        plan = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=30
        ).stdout
        assert "uplot/dist/uPlot.iife.min.js" in plan and "npm install" in plan, (target, plan)
        assert plan.index("uPlot.iife.min.js") < plan.index("xbit_admin.devstack"), plan
    assert devstack.UPLOT == ROOT / ".xbit" / "node" / "node_modules" / "uplot" / "dist" / "uPlot.iife.min.js"


# ------------------------------------------------------------------ `make stop` and a running `make run`


def test_make_stop_stops_a_running_make_run_as_ctrl_c_does(scratch: Path) -> None:
    pidfile = scratch / "run.pid"
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from xbit_admin import devstack
        path = Path(sys.argv[1])
        devstack.interrupt_on_signals()
        devstack.run_pidfile_write(path)
        try:
            print("RUNNING", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("STOPPED THROUGH ITS CLEAN-UP", flush=True)
        finally:
            devstack.run_pidfile_remove(path)
        """
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script, str(pidfile)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert run.stdout is not None and run.stdout.readline().strip() == "RUNNING"
        assert devstack.run_pid(pidfile) == run.pid
        assert devstack.stop_run(pidfile, seconds=30)
        assert run.wait(10) == 0 and "STOPPED THROUGH ITS CLEAN-UP" in run.stdout.read()
        assert not pidfile.exists()
    finally:
        run.kill()
        run.wait()


def test_a_stale_run_pid_file_names_no_process_and_is_cleared(scratch: Path) -> None:
    pidfile = scratch / "run.pid"
    # a live pid with another start time: the pid was reused by another program, which is left alone
    pidfile.write_text(f"{os.getpid()} 12345.0\n")
    assert devstack.run_pid(pidfile) is None
    assert devstack.stop_run(pidfile, seconds=1) and not pidfile.exists()
    # a process that is gone
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pidfile.write_text(f"{gone.pid} 1.0\n")
    assert devstack.run_pid(pidfile) is None
    pidfile.write_text("not a pid file")
    assert devstack.run_pid(pidfile) is None
