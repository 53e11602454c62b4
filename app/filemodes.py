"""Data files are private to the account that runs the service.

The data directory holds password hashes (users.db), the JWT secret in dev, the event log and
every database: the process runs with umask 077, so everything it creates (SQLite files with
their -wal and -shm, logs, the initial admin password) is 0600 and every directory 0700, and at
start the data directory and the files directly in it are brought to those modes, for installs
made before this rule.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_umask() -> None:
    os.umask(PRIVATE_UMASK)


def secure_data_dir(data_dir: Path) -> None:
    """Create the data directory 0700 if needed and take group and other access away from it
    and the files in it (a warning, not a failure, where this account may not change a mode)."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    paths = [data_dir, *data_dir.iterdir()]
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
            if stat.S_IMODE(info.st_mode) & 0o077:
                try:
                    path.chmod(stat.S_IMODE(info.st_mode) & wanted)
                except PermissionError:
                    log.warning("cannot make %s private (mode %o)", path, stat.S_IMODE(info.st_mode))
