"""Real processes for the deployment tests: databases, gunicorn, Celery, HTTP and figures.

Every wait here is a polling loop with a deadline; every process is started in a process
group of its own and killed with its group, whatever happened.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "test-artifacts" / "deployment-figures.json"
PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: The Redis database of the suite's Celery queues (each test has a queue of its own).
REDIS_DB = int(os.environ.get("FLEXACTIONS_DEPLOY_REDIS_DB", "14"))
BROKER = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
URL = "/flex/messages/"
TOKEN = "deploy-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Token {TOKEN}"}
#: The answer the target behaviour gives while the database is unreachable.
DB_UNAVAILABLE = "The database is unavailable; retry in a moment."

T = TypeVar("T")


# Waiting


def wait_for(
    check: Callable[[], T | None], timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or check}")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# PostgreSQL, as the test sees it (directly, never through the proxy)


def pg_url(database: str, port: int = PG_PORT) -> str:
    return f"postgresql+psycopg://postgres@{PG_HOST}:{port}/{database}"


def connect(database: str = "postgres", autocommit: bool = True) -> psycopg.Connection[Any]:
    import psycopg

    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user="postgres",
        dbname=database,
        autocommit=autocommit,
        connect_timeout=5,
    )


def terminate_backends(database: str) -> None:
    with connect() as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )


def create_database(database: str) -> None:
    from psycopg import sql

    with connect() as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(database: str) -> None:
    from psycopg import sql

    terminate_backends(database)
    with connect() as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def query(database: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``statement`` on a connection of its own (committed data only)."""
    with connect(database) as connection:
        return list(connection.execute(statement, args or None).fetchall())


def scalar(database: str, statement: str, *args: Any) -> Any:
    rows = query(database, statement, *args)
    return rows[0][0] if rows else None


# HTTP


@dataclass
class Answer:
    """One HTTP answer; ``status`` 0 when no answer came (reset, timeout)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.text[:300]!r}, error={self.error!r})"


def post(
    port: int,
    body: Any,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    path: str = URL,
) -> Answer:
    """POST ``body`` as JSON with the suite's token, on a connection of its own."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={"Content-Type": "application/json", **AUTH, **(headers or {})},
        )
        response = connection.getresponse()
        data = response.read()
        return Answer(response.status, dict(response.getheaders()), data, time.monotonic() - start)
    except (OSError, http.client.HTTPException) as error:
        return Answer(0, seconds=time.monotonic() - start, error=repr(error))
    finally:
        connection.close()


def execute(name: str, model: str | None = None, **params: Any) -> dict[str, Any]:
    """The ``execute_action`` message of ``name``; keyword arguments go into its params."""
    message: dict[str, Any] = {"name": name, **params}
    if model is not None:
        message["model"] = model
    return {"name": "execute_action", "params": message}


ACTION_LIST = {"name": "get_action_list"}


def parallel(calls: Iterable[Callable[[], T]], workers: int) -> list[T]:
    """Run ``calls`` ``workers`` at a time; their results in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def statuses(answers: Iterable[Answer]) -> dict[str, int]:
    """How many answers had each status, as JSON keys."""
    return {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())}


def server_errors(answers: Iterable[Answer]) -> dict[str, int]:
    return {k: v for k, v in statuses(answers).items() if int(k) >= 500}


# Processes


def children(pid: int) -> list[int]:
    """The child pids of ``pid``, from /proc (no psutil)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return sorted(set(found))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Process:
    """A command in a process group of its own, its output in ``log``."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.command = command
        self.log = log
        with log.open("ab") as output:
            self.popen = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def children(self) -> list[int]:
        return [pid for pid in children(self.pid) if alive(pid)]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the group, then SIGKILL to the group after ``grace`` seconds."""
        if self.running():
            self.kill_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Whatever is left of the group (orphaned workers, pool processes) goes too.
        self.kill_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


def base_env(
    database_url: str,
    state_dir: Path,
    queue: str,
    config: dict[str, Any] | None = None,
    engine_options: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment of a process that builds ``tests.deployment.app``."""
    from tests.deployment import app as deployment

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXACTIONS_DEPLOY_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
            "PYTHONUNBUFFERED": "1",
            deployment.ENV_DATABASE_URL: database_url,
            deployment.ENV_TOKEN: TOKEN,
            deployment.ENV_CONFIG: json.dumps(config or {}),
            deployment.ENV_ENGINE_OPTIONS: json.dumps(engine_options or {}),
            deployment.ENV_BROKER: BROKER,
            deployment.ENV_QUEUE: queue,
            deployment.ENV_STATE_DIR: str(state_dir),
        }
    )
    return env


def _has_setting(name: str) -> bool:
    """Whether the installed gunicorn knows the setting ``name``."""
    import gunicorn.config

    return any(setting.name == name for setting in gunicorn.config.KNOWN_SETTINGS)


class Gunicorn(Process):
    """``gunicorn -w N [--preload] ... -b 127.0.0.1:<port> <app>``."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        *,
        app: str = "tests.deployment.app:create_app()",
        workers: int = 4,
        preload: bool = False,
        threads: int | None = None,
        timeout: int | None = None,
    ) -> None:
        self.port = free_port()
        self.workers = workers
        self.access_log = log_dir / f"access-{self.port}.log"
        command = [sys.executable, "-m", "gunicorn", "-w", str(workers)]
        command += ["-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "2"]
        # %(p)s is the worker's pid: the log tells which worker answered each request.
        command += ["--access-logfile", str(self.access_log), "--access-logformat", "%(p)s %(s)s"]
        if _has_setting("control_socket_disable"):
            # Otherwise every gunicorn on the machine shares one control socket path.
            command.append("--no-control-socket")
        if preload:
            command.append("--preload")
        if threads is not None:
            command += ["--worker-class", "gthread", "--threads", str(threads)]
        if timeout is not None:
            command += ["--timeout", str(timeout)]
        command.append(app)
        super().__init__(command, env, log_dir / f"gunicorn-{self.port}.log")

    def post(self, body: Any, headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
        return post(self.port, body, headers, timeout)

    def worker_pids(self) -> list[int]:
        return self.children()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every worker has loaded the app: each one answered ``get_action_list`` 200.

        A worker process exists before its app is loaded; a test that cuts the database then
        would fail that worker's boot and so halt gunicorn.
        """

        def ready() -> bool:
            if not self.running():
                raise AssertionError("gunicorn exited while starting:\n" + self.log_tail())
            workers = self.worker_pids()
            if len(workers) < self.workers:
                return False
            calls = 2 * self.workers
            parallel([lambda: self.post(ACTION_LIST, timeout=5)] * calls, calls)
            answered = {pid for pid, seen in self.answering_pids().items() if seen[200]}
            return set(workers) <= answered

        try:
            wait_for(ready, timeout, 0.1, "gunicorn to answer")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_tail()}") from None

    def answering_pids(self) -> dict[int, Counter[int]]:
        """Statuses answered per worker pid, from the access log."""
        seen: dict[int, Counter[int]] = {}
        with contextlib.suppress(OSError):
            for line in self.access_log.read_text().splitlines():
                parts = line.strip().split()
                if len(parts) == 2 and parts[0].startswith("<") and parts[1].isdigit():
                    pid = int(parts[0].strip("<>"))
                    seen.setdefault(pid, Counter())[int(parts[1])] += 1
        return seen


class CeleryWorker(Process):
    """``celery -A tests.deployment.worker worker -P prefork -c N -Q <queue>``."""

    def __init__(self, env: dict[str, str], log_dir: Path, queue: str, concurrency: int = 2):
        self.queue = queue
        self.concurrency = concurrency
        self.name = f"deploy-{uuid.uuid4().hex[:8]}@localhost"
        command = [sys.executable, "-m", "celery", "-A", "tests.deployment.worker", "worker"]
        command += ["-P", "prefork", "-c", str(concurrency), "-Q", queue, "-n", self.name]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        command += ["--loglevel=INFO"]
        super().__init__(command, env, log_dir / f"celery-{self.name.split('@')[0]}.log")

    def pool_pids(self) -> list[int]:
        return self.children()

    def wait_ready(self, celery: Any, timeout: float = 45.0) -> None:
        """Until the worker answers a ping addressed to it and its pool has all its processes."""

        def ready() -> bool:
            if not self.running():
                raise AssertionError("the Celery worker exited while starting:\n" + self.log_tail())
            if len(self.pool_pids()) < self.concurrency:
                return False
            return bool(celery.control.ping(destination=[self.name], timeout=0.5))

        try:
            wait_for(ready, timeout, 0.1, "the Celery worker to answer a ping")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_tail()}") from None


def forget_queue(queue: str) -> None:
    """Remove a test's queue and its unacknowledged messages from Redis (best effort)."""
    try:
        import redis
    except ImportError:
        return
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=2)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        for tag, raw in client.hscan_iter("unacked"):
            with contextlib.suppress(ValueError, TypeError, IndexError):
                if json.loads(raw)[2] == queue:
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)
    except redis.RedisError:
        pass
    finally:
        client.close()


def pending_messages(queue: str) -> int:
    """Messages of ``queue`` waiting in Redis or delivered and not yet acknowledged: the run
    task acknowledges late, so 0 means every task taken from the queue has finished."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=2)
    try:
        pending = int(client.llen(queue))
        for _, raw in client.hscan_iter("unacked"):
            with contextlib.suppress(ValueError, TypeError, IndexError):
                pending += json.loads(raw)[2] == queue
        return pending
    finally:
        client.close()


# Files the handlers leave behind


def progress(state_dir: Path, action: str) -> tuple[int, int] | None:
    """``(pid, rows flushed)`` of the latest run of ``action``, once it started."""
    try:
        pid, done = (state_dir / f"{action}.progress").read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid), int(done)


def wait_progress(state_dir: Path, action: str, rows: int, timeout: float = 30) -> tuple[int, int]:
    """``(pid, rows flushed)`` once the running ``action`` flushed at least ``rows`` rows."""

    def reached() -> tuple[int, int] | None:
        seen = progress(state_dir, action)
        return seen if seen is not None and seen[1] >= rows else None

    return wait_for(reached, timeout, what=f"{action} to flush {rows} rows")


def runs(state_dir: Path, action: str) -> list[int]:
    """The pids of every call of ``action``'s handler, in order."""
    try:
        lines = (state_dir / "runs.log").read_text().splitlines()
    except OSError:
        return []
    return [int(pid) for name, pid in (line.split() for line in lines) if name == action]


# Figures


def record_figures(section: str, figures: dict[str, Any]) -> None:
    """Merge ``figures`` into the deployment figures file under ``section``."""
    FIGURES.parent.mkdir(exist_ok=True)
    try:
        data = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        data = {}
    data[section] = figures
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def elapsed() -> Iterator[Callable[[], float]]:
    start = time.monotonic()
    yield lambda: round(time.monotonic() - start, 3)
