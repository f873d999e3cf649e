"""A TCP forwarder that a test can cut and restore, to make PostgreSQL "go away" for
one proxy without stopping the shared server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

BUFFER = 65536
OUTAGE_AUTH_TTL = 0.5  # seconds: cached keys expire during an outage


class TcpForwarder:
    """Listens on 127.0.0.1:<port> and pipes each connection to ``target``.

    :meth:`cut` closes the listener and every open connection (clients then get
    "connection refused" until :meth:`restore` listens again on the same port).
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self.connections = 0

    def start(self) -> TcpForwarder:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            self._close(sock)

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        self.cut()


def via_port(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (through a forwarder)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@contextlib.contextmanager
def forwarded_postgres(pg_url: str) -> Iterator[TcpForwarder]:
    """A started forwarder to the PostgreSQL server of ``pg_url``; stopped on exit."""
    parts = urlsplit(pg_url)
    running = TcpForwarder((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
    try:
        yield running
    finally:
        running.stop()


def outage_env(proxy_env: Mapping[str, str], pg_url: str, forwarder: TcpForwarder,
               **overrides: str) -> dict[str, str]:
    """A proxy environment for PostgreSQL outage tests: its PostgreSQL through
    ``forwarder``; quick spend flushes, write retries and budget refreshes; a 1 s
    PostgreSQL timeout; a key cache that expires within an outage (so the stale path
    is exercised)."""
    return {**proxy_env, "POOL_DATABASE_URL": via_port(pg_url, forwarder.port),
            "POOL_SPEND_FLUSH_INTERVAL": "0.2", "POOL_SPEND_RETRY_MAX": "0.5",
            "POOL_AUTH_CACHE_TTL": str(OUTAGE_AUTH_TTL), "POOL_DB_TIMEOUT": "1",
            "POOL_BUDGET_REFRESH_SECONDS": "0.5", **overrides}
