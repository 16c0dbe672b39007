"""A PostgreSQL server of Debian's `postgresql` package, started on loopback in a temporary
directory and stopped after use (the tests' and experiments/search's shared studies)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


class PostgresServer:
    """`with PostgresServer() as server: url = server.new_database()`."""

    @staticmethod
    def bin_dir() -> Path | None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        return found[-1].parent if found else None

    def __enter__(self) -> PostgresServer:
        self.bin = self.bin_dir()
        assert self.bin is not None, "apt-get install postgresql"
        self.root = Path(tempfile.mkdtemp(prefix="fashion_lab_pg_"))  # its user reaches /tmp
        # initdb refuses root: the package's own user runs the server
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        data = str(self.root / "data")
        initdb = [str(self.bin / "initdb"), "-D", data, "-U", "postgres", "--auth=trust"]
        subprocess.run([*self.as_user, *initdb], check=True, capture_output=True)
        self.ctl = [*self.as_user, str(self.bin / "pg_ctl"), "-D", data]
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c max_connections=200"
        start = [*self.ctl, "-l", str(self.root / "log"), "-w", "-o", options, "start"]
        subprocess.run(start, check=True, capture_output=True)
        return self

    def new_database(self) -> str:
        """A new, empty database, as a storage URL."""
        name = f"study_{uuid.uuid4().hex[:8]}"
        createdb = [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
        subprocess.run([*createdb, "-U", "postgres", name], check=True, capture_output=True)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc: object) -> None:
        subprocess.run([*self.ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
