"""Opening an MLflow store: a new SQLite store is created (migrated) by one process at a time.

MLflow creates a SQLite store's tables and runs its schema migrations the first time a client
opens it. Two processes doing that at once both migrate and one fails (``table ... already
exists``, ``duplicate column name``), so its run goes only to the fallback file. :func:`mlflow_client`
holds an OS file lock beside the database (``<db>.lock``) while the client opens the store; the
first process creates it, the others wait and then find it ready. Other stores open unlocked.

    client = mlflow_client("sqlite:////tmp/new/mlflow.db")   # also locks /tmp/new/mlflow.db.lock
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanfit._util.locks import locked


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores and in-memory SQLite.

    >>> sqlite_file("sqlite:////tmp/mlflow.db?timeout=5")
    PosixPath('/tmp/mlflow.db')
    >>> sqlite_file("http://localhost:5000") is None
    True
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def mlflow_client(uri: str) -> Any:
    """``MlflowClient(uri)``, with a new SQLite store's creation serialised across processes."""
    from mlflow.tracking import MlflowClient

    db = sqlite_file(uri)
    if db is None:
        return MlflowClient(uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with locked(db.with_name(db.name + ".lock")):
        return MlflowClient(uri)
