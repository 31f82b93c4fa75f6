"""The embedded server: idempotent start shared between processes, status, stale pid files, crashes,
ports in use and foreign data directories, each with one clear message. Every test runs its own server."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgretrieval.errors import DatabaseUnavailableError, ServerError
from pgretrieval.server import EmbeddedServer, free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(tmp_path / "home", port=free_port())
    try:
        yield srv
    finally:
        srv.destroy()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGRETRIEVAL_")}
    env["PGRETRIEVAL_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "pgretrieval", *args], capture_output=True, text=True, env=env, timeout=180
    )


def test_start_is_idempotent_and_shared_between_processes(server: EmbeddedServer) -> None:
    first = server.start()
    assert first.running and first.url
    again = server.start()
    assert again.pid == first.pid
    # Another process (the CLI) reuses the running server instead of starting a second one.
    result = _cli(server.home, "db", "status")
    assert result.returncode == 0, result.stderr
    assert f"pid {first.pid}" in result.stdout
    assert str(server.data_dir) in result.stdout
    url = _cli(server.home, "db", "url").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("pgretrieval",)


def test_status_and_stop(server: EmbeddedServer) -> None:
    assert not server.status().running
    assert "not initialised" in server.status().message
    server.start()
    assert server.status().running
    assert server.stop().message == "stopped"
    assert not server.status().running
    assert server.stop().message == "not running"
    result = _cli(server.home, "db", "status")
    assert result.returncode == 3
    assert "not running" in result.stdout


def test_stale_pid_file_is_recovered_with_a_message(server: EmbeddedServer) -> None:
    server.start()
    server.stop()
    dead_pid = _dead_pid()
    (server.data_dir / "postmaster.pid").write_text(f"{dead_pid}\n{server.data_dir}\n")
    status = server.start()
    assert status.running
    assert "stale postmaster.pid" in status.message


def test_crashed_server_recovers_on_next_start(server: EmbeddedServer) -> None:
    status = server.start()
    with psycopg.connect(status.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    assert status.pid is not None
    os.kill(status.pid, signal.SIGKILL)
    _wait_until(lambda: not _alive(status.pid))
    result = _cli(server.home, "db", "start")
    assert result.returncode == 0, result.stderr
    assert "recovered" in result.stdout
    url = server.url()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        srv = EmbeddedServer(tmp_path / "home", port=port)
        try:
            with pytest.raises(ServerError, match=f"port {port} .* in use .* PGRETRIEVAL_PORT"):
                srv.start()
        finally:
            srv.destroy()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the data directory to another user")
def test_data_directory_owned_by_someone_else(server: EmbeddedServer) -> None:
    server.start()
    server.stop()
    nobody = pwd.getpwnam("nobody")
    os.chown(server.data_dir, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(ServerError, match="belongs to user 'nobody'"):
        server.start()


def test_url_before_first_start_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="never been started"):
        EmbeddedServer(tmp_path / "home").url()
    result = _cli(tmp_path / "home2", "db", "url")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "never been started" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_dsn_is_one_clear_sentence(tmp_path: Path) -> None:
    from pgretrieval.db import connect

    dsn = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nope"
    with pytest.raises(DatabaseUnavailableError, match="cannot connect to postgresql://nobody:\\*\\*\\*@") as info:
        connect(dsn)
    assert "secret" not in str(info.value)
    env = {**os.environ, "PGRETRIEVAL_DATABASE_URL": dsn}
    result = subprocess.run(
        [sys.executable, "-m", "pgretrieval", "migrate"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot connect to")
    assert "Traceback" not in result.stderr and "secret" not in result.stderr


def test_migrate_twice_via_cli(server: EmbeddedServer) -> None:
    first = _cli(server.home, "migrate")
    assert first.returncode == 0, first.stderr
    assert "schema steps applied: 0001_base" in first.stdout
    second = _cli(server.home, "migrate")
    assert second.returncode == 0
    assert "up to date" in second.stdout


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_until(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")
