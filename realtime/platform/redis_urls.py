"""What REDIS_URL names: one Redis (`redis://`, `rediss://`, `unix://`), or a Redis
Cluster by some of its nodes (`redis+cluster://[user:password@]host:port,host:port/`,
`rediss+cluster://` with TLS), the form the `limits` package also reads. The nodes named
are only where to start: the client asks them for the cluster's current shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from redis.asyncio.cluster import RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}


@dataclass(frozen=True)
class ClusterAddress:
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool

    def node_url(self, host: str, port: int) -> str:
        """A plain URL of one node, with this cluster's credentials (for a pub/sub link)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self._credentials()}{host}:{port}"

    def _credentials(self) -> str:
        if self.password is None and self.username is None:
            return ""
        return f"{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@"


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def cluster_address(url: str) -> ClusterAddress:
    """The nodes and credentials a `redis+cluster://` URL names; ValueError if it names none."""
    scheme, _, rest = url.partition("://")
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"'{scheme}://' is not a Redis Cluster URL (redis+cluster://).")
    location = rest.split("/", 1)[0].split("?", 1)[0]
    credentials, _, hosts = location.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = tuple(_node(each) for each in hosts.split(",") if each)
    if not nodes:
        raise ValueError("A redis+cluster:// URL names at least one node: host:port.")
    return ClusterAddress(
        nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) if credentials else None,
        tls=CLUSTER_SCHEMES[scheme],
    )


def _node(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Cluster node '{text}' is not host:port.")
    return host.strip("[]"), int(port)


def cluster_client(url: str, *, timeout: float, **options: Any) -> RedisCluster:
    """A cluster client that retries nothing by itself (the caller falls back or pays a
    resync instead) and waits at most `timeout` for a node. Imported here: a worker
    without a cluster never loads redis-py's cluster client."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    address = cluster_address(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        ssl=address.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **options,
    )
