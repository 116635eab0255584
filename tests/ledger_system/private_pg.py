"""A private PostgreSQL server for tests that must kill or reconfigure the server itself.

Built from the binaries of the `pgserver` package (the same ones the embedded server uses):
``initdb`` into a temporary directory, then ``postgres`` started directly (so this process
knows the postmaster's pid) on a free TCP port of 127.0.0.1, durable settings (fsync,
synchronous_commit and full_page_writes on). TCP connections need the password; the Unix socket
in the data directory is trusted. When the tests run as root, the server runs as pgserver's
unprivileged system user, as the embedded server does (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Final
from urllib.parse import quote

import psycopg

START_TIMEOUT_S: Final = 60
STOP_TIMEOUT_S: Final = 30
SERVER_USER: Final = "pgserver"  # the system user pgserver itself runs PostgreSQL as under root
_DURABLE: Final = ("fsync=on", "synchronous_commit=on", "full_page_writes=on")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """``with PrivatePostgres(password) as pg: pg.url ...``; kill() then start() simulates a crash."""

    def __init__(self, password: str) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 - pgserver's platformdirs warns without it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.password = password
        self.root = Path(tempfile.mkdtemp(prefix="qenex-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.user: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            self._prepare_for_root()
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{quote(self.password, safe='')}@127.0.0.1:{self.port}/postgres"

    def _prepare_for_root(self) -> None:
        import pwd

        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(SERVER_USER)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o055)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        self.user = SERVER_USER
        entry = entry or pwd.getpwnam(SERVER_USER)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        subprocess.run([str(self.bin / args[0]), *args[1:]], check=True, capture_output=True, timeout=START_TIMEOUT_S,
                       user=self.user)

    def _initdb(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            shutil.chown(pwfile, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--auth-local=trust",
                  "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
        pwfile.unlink()

    def start(self) -> None:
        """Start the postmaster (after a kill: crash recovery from the WAL) and wait until it answers."""
        args = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.data),
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=40"]
        for setting in _DURABLE:
            args += ["-c", setting]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, user=self.user,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"PostgreSQL did not start: {self.log.read_text()[-2000:]}")
                try:
                    with psycopg.connect(self.url, connect_timeout=2):
                        return
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        except BaseException:
            self.kill()  # never leave a half-started server behind
            raise

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started, at once: as if the machine died
        (except that the OS keeps what was written; fsync'd data is what survives either way)."""
        import psutil

        if self.proc is None:
            return
        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=STOP_TIMEOUT_S)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL if it lingers."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            self.proc = None
        except subprocess.TimeoutExpired:
            self.kill()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
