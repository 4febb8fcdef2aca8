"""A throwaway PostgreSQL server for the test session, on 127.0.0.1.

Uses Debian's ``postgresql`` package binaries (``.ci/run`` and ``make test``
install it when missing). ``CAREBOT_TEST_POSTGRES_URL`` points the tests at an
existing server instead. Each test gets its own fresh database.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

_counter = itertools.count(1)


def find_bin_dir() -> Path | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0)
    for directory in reversed(dirs):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.root: Path | None = None
        self.port = 0
        self.admin_url = ""

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]  # type: ignore[operator]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if self.bin_dir is None:
            raise FileNotFoundError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="carebot-pg-"))
        data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.root.chmod(0o755)
        self.port = _free_port()
        self._run("initdb", "-D", str(data), "-U", "carebot", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "start")
        self.admin_url = f"postgresql://carebot@127.0.0.1:{self.port}/postgres"
        return self.admin_url

    def stop(self) -> None:
        if self.root is not None and self.bin_dir is not None:
            try:
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
            finally:
                shutil.rmtree(self.root, ignore_errors=True)


def create_database(admin_url: str) -> str:
    """A fresh database on the server; returns its SQLAlchemy URL (psycopg 3)."""
    name = f"carebot_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"
