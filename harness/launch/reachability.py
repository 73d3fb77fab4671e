"""Whether a worker on another machine could reach the study's stores, judged from their URLs.

A SQLite file, a journal file or a local MLflow store lives on this machine's disk, and a host
that is this machine's loopback (``localhost``, ``127.0.0.1``, ``::1``, a Unix socket) names, on
any other machine, that machine itself: workers there would find no database, or another one.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from harness.config import StudyConfig
from harness.redaction import mask_url
from harness.storage import is_journal

_DATABASES = ("postgresql", "mysql", "mariadb")
_REMOTE_STORES = ("http", "https", "databricks", "uc", *_DATABASES)


def cluster_problems(config: StudyConfig) -> list[str]:
    """Why workers on other machines could not reach this study's stores; empty when they could."""
    found = [
        ("storage", storage_problem(config.storage)),
        ("mlflow.tracking_uri", tracking_problem(config.mlflow.tracking_uri)),
    ]
    if (artifacts := config.mlflow.artifact_location) is not None:
        found.append(("mlflow.artifact_location", tracking_problem(artifacts)))
    return [f"{setting} {why}" for setting, why in found if why]


def storage_problem(url: str) -> str | None:
    """Why the Optuna storage at ``url`` is out of a cluster worker's reach, or None."""
    if is_journal(url) or url.startswith("sqlite"):
        return f"{mask_url(url)} is a file on this machine: workers elsewhere cannot open it (use PostgreSQL)"
    if not url.startswith(_DATABASES):
        return f"{mask_url(url)} is not a database server workers elsewhere can open (use PostgreSQL)"
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host")
    return _host_problem(url, host if isinstance(host, str) else None)


def tracking_problem(uri: str) -> str | None:
    """Why the MLflow store (tracking URI or artifact location) at ``uri`` is out of reach, or None."""
    scheme = urlsplit(uri).scheme.split("+")[0] or uri  # MLflow's bare "databricks" names a workspace
    if scheme not in _REMOTE_STORES:
        return (
            f"{mask_url(uri)} is on this machine's disk: workers elsewhere cannot write to it (use a tracking server)"
        )
    if scheme in ("databricks", "uc"):
        return None
    return _host_problem(uri, urlsplit(uri).hostname)


def _host_problem(url: str, host: str | None) -> str | None:
    if not host or host.startswith("/"):
        return f"{mask_url(url)} names no host (a Unix socket on this machine): name one workers elsewhere reach"
    if is_loopback(host):
        return f"{mask_url(url)} names {host}, this machine's loopback: on a worker's machine it is that machine"
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is (or resolves only to) a loopback address. A name that does not resolve
    here is given the benefit of the doubt: it may resolve on the cluster."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
