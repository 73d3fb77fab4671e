"""One study, many workers: named locks that live where the study's storage lives.

Workers on several machines share nothing but the Optuna storage (and the MLflow store), so a
step that must happen once per study (create the study, the experiment and the parent run; the
baseline; registration) runs under a lock of that storage: a PostgreSQL advisory lock, a MySQL
named lock, or a file lock beside a SQLite database or journal file. Every one of them is released
by the operating system or the database when its holder dies, so a killed worker never blocks
the others.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def study_lock(storage_url: str, name: str, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the lock ``name`` of the storage at ``storage_url``; TimeoutError past ``timeout_s``."""
    if storage_url.startswith(("postgresql", "mysql", "mariadb")):
        with _database_lock(storage_url, name, timeout_s):
            yield
    elif (path := file_of(storage_url)) is not None:
        from filelock import FileLock, Timeout

        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
        lock = FileLock(str(path.parent / f".{path.name}.{digest}.lock"))
        try:
            lock.acquire(timeout=-1 if timeout_s is None else timeout_s)
        except Timeout as exc:
            raise TimeoutError(f"lock {name!r} on {storage_url} held elsewhere past {timeout_s} s") from exc
        try:
            yield
        finally:
            lock.release()
    else:  # in-memory storage: one process by definition
        with _process_lock(name, timeout_s):
            yield


def file_of(storage_url: str) -> Path | None:
    """The file a file-backed storage lives in (SQLite database or Optuna journal), else None."""
    from harness.storage import is_journal, sqlite_file

    if is_journal(storage_url):
        return Path(storage_url).expanduser().resolve()
    return sqlite_file(storage_url)


def is_shared(storage_url: str) -> bool:
    """Whether other processes can open this storage too (a database server or a file)."""
    return storage_url.startswith(("postgresql", "mysql", "mariadb")) or file_of(storage_url) is not None


@contextmanager
def _process_lock(name: str, timeout_s: float | None) -> Iterator[None]:
    with _LOCAL_GUARD:
        lock = _LOCAL_LOCKS.setdefault(name, threading.Lock())
    if not lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
        raise TimeoutError(f"lock {name!r} held elsewhere past {timeout_s} s")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _database_lock(url: str, name: str, timeout_s: float | None) -> Iterator[None]:
    """A session-level lock on a connection of its own: the server frees it if the worker dies."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from harness.storage import connect_args, lost_connection, wait_for_database

    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args(url))
    postgres = engine.dialect.name == "postgresql"
    key: int | str = lock_key(name) if postgres else hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    try:
        with wait_for_database(engine.connect, url=url) as connection:  # never answered: StorageError
            if postgres and timeout_s is not None:
                connection.execute(sqlalchemy.text(f"SET lock_timeout = {int(timeout_s * 1000)}"))
            take = "SELECT pg_advisory_lock(:key)" if postgres else "SELECT GET_LOCK(:key, :wait)"
            try:
                got = connection.execute(
                    sqlalchemy.text(take), {"key": key, "wait": -1 if timeout_s is None else timeout_s}
                ).scalar()
            except sqlalchemy.exc.OperationalError as exc:  # PostgreSQL's lock_timeout
                raise TimeoutError(f"lock {name!r} on the study database held past {timeout_s} s") from exc
            if not postgres and got != 1:
                raise TimeoutError(f"lock {name!r} on the study database held past {timeout_s} s")
            connection.commit()
            try:
                yield
            finally:
                release = "SELECT pg_advisory_unlock(:key)" if postgres else "SELECT RELEASE_LOCK(:key)"
                try:
                    connection.execute(sqlalchemy.text(release), {"key": key})
                    connection.commit()
                except sqlalchemy.exc.DBAPIError as error:
                    if not lost_connection(error):
                        raise
                    # The connection died (a database restart): the server dropped its locks with it.
    finally:
        engine.dispose()
