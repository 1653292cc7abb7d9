"""A throw-away PostgreSQL cluster on one host of a `tests.support.netns.Network`.

`PgCluster(net, "A")`: `initdb --auth=trust` of a temporary data directory as the `postgres` user,
`pg_ctl start` inside the host's namespace listening on the host's address only (plus a Unix socket in
the data directory, so it never meets the machine's own server), `pg_hba.conf` trusting the private
subnet. `create_database(name)` gives each test its own database; `stop()` stops the cluster
(`-m immediate`) and removes the directory. Leftover data directories of a crashed run (their
postmaster died with its namespace) are removed by `remove_leftovers()`.
"""

from __future__ import annotations

import contextlib
import glob
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.netns import Network

TMP = Path(tempfile.gettempdir())


def pg_bin() -> Path | None:
    """The newest Debian PostgreSQL binaries (/usr/lib/postgresql/N/bin) with initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def why_unavailable() -> str | None:
    if pg_bin() is None:
        return "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb; Debian: postgresql)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no `postgres` system user to run initdb as"
    if shutil.which("runuser") is None:
        return "`runuser` is not installed (util-linux)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


class PgCluster:
    def __init__(self, net: Network, host: str, *, port: int = 5432, prefix: str = "trajgym-pg") -> None:
        self.net = net
        self.host = host
        self.addr = net.addr(host)
        self.port = port
        self.prefix = prefix
        self.bin = pg_bin()
        self.dir: Path | None = None

    def remove_leftovers(self) -> None:
        for path in TMP.glob(f"{self.prefix}-*"):
            shutil.rmtree(path, ignore_errors=True)

    def _as_postgres(self, *argv: str, timeout: float = 120.0) -> None:
        done = self.net.run(self.host, ["runuser", "-u", "postgres", "--", *argv], timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        assert self.bin is not None
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-", dir=TMP))
        shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._as_postgres(str(self.bin / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                          "--no-sync", "--no-instructions")
        with (data / "pg_hba.conf").open("a") as fh:
            fh.write(f"host all all {self.net.subnet}.0/24 trust\n")
        options = " ".join(f"-c {kv}" for kv in (
            f"listen_addresses={self.addr}", f"port={self.port}", f"unix_socket_directories={self.dir}",
            "fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200",
            "shared_buffers=32MB", "log_min_messages=warning"))
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"), "-w", "-t", "120",
                          "-o", options, "start")

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@{self.addr}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        def create() -> None:
            with psycopg.connect(self.url(driver="postgresql"), autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')

        self.net.call(self.host, create)
        return self.url(name)

    def stop(self) -> None:
        if self.dir is None:
            return
        assert self.bin is not None
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "-t", "30", "stop",
                              timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
