"""A TCP proxy in front of PostgreSQL that a test can cut, hang and restore.

The processes under test connect to the proxy; the test itself talks to the real server
directly, so it can still read and reset the database while the proxy plays an outage.
Only the proxy's own sockets are ever closed: the real server is never touched.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field

#: Bytes read from one side before they are passed on to the other.
CHUNK = 65536


@dataclass
class Counters:
    """What the proxy saw since it started."""

    accepted: int = 0
    #: Connections accepted while cut, and closed at once.
    refused: int = 0
    #: Open connections closed by :meth:`Proxy.cut`.
    cut: int = 0
    #: Connections accepted or held while hung.
    hung: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0


@dataclass(eq=False)
class _Pair:
    """A client connection and its connection to the server, pumped by two threads."""

    client: socket.socket
    server: socket.socket
    pumps_alive: int = 2
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: bool = False

    def stop(self) -> None:
        """Wake both pumps up with an EOF; the last pump to leave closes the sockets."""
        with self.lock:
            self.stopped = True
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pump_done(self) -> None:
        self.stop()
        with self.lock:
            self.pumps_alive -= 1
            last = self.pumps_alive == 0
        if last:
            self.client.close()
            self.server.close()


class Proxy:
    """Forwards 127.0.0.1:<port> to ``upstream``; :meth:`cut`, :meth:`hang`, :meth:`restore`."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self.counters = Counters()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._threads: list[threading.Thread] = []
        self._cut = False
        #: Set while bytes flow; cleared by :meth:`hang`.
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept")
        self._acceptor.daemon = True
        self._acceptor.start()

    @property
    def mode(self) -> str:
        if self._cut:
            return "cut"
        return "forward" if self._flowing.is_set() else "hang"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        """The database goes away: every open connection is closed on both sides at once, and
        new ones are closed as soon as they are accepted."""
        with self._lock:
            self._cut = True
            pairs = list(self._pairs)
            self.counters.cut += len(pairs)
        # A hung pump waits for the flow to resume before it notices its sockets closed.
        self._flowing.set()
        for pair in pairs:
            pair.stop()

    def hang(self) -> None:
        """The database hangs: connections are accepted and kept open, nothing is forwarded."""
        with self._lock:
            self._cut = False
            self._flowing.clear()

    def restore(self) -> None:
        """Forward again."""
        with self._lock:
            self._cut = False
            self._flowing.set()

    def close(self) -> None:
        """Stop listening, close every connection and wait for the proxy's threads."""
        self._closed = True
        self.cut()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.counters.accepted += 1
                cut = self._cut
                if not self._flowing.is_set():
                    self.counters.hung += 1
            if cut or self._closed:
                self.counters.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                if self._cut or self._closed:
                    # Cut while the server connection was being made.
                    self.counters.refused += 1
                    server.close()
                    _reset(client)
                    continue
                self._pairs.add(pair)
                # Started under the lock: a cut() between the add and the start would
                # otherwise stop a pair whose pumps never ran, and its sockets stay open.
                for source, target, up in ((client, server, True), (server, client, False)):
                    thread = threading.Thread(
                        target=self._pump, args=(pair, source, target, up), name="proxy-pump"
                    )
                    thread.daemon = True
                    self._threads.append(thread)
                    thread.start()
                self._threads = [t for t in self._threads if t.is_alive()]

    def _pump(self, pair: _Pair, source: socket.socket, target: socket.socket, up: bool) -> None:
        try:
            while True:
                try:
                    data = source.recv(CHUNK)
                except OSError:
                    return
                if not data:
                    return
                # Hung: hold what was read, forward nothing until restore() or cut().
                while not self._flowing.wait(0.1):
                    if pair.stopped:
                        return
                if pair.stopped:
                    return
                try:
                    target.sendall(data)
                except OSError:
                    return
                with self._lock:
                    if up:
                        self.counters.bytes_to_server += len(data)
                    else:
                        self.counters.bytes_to_client += len(data)
        finally:
            with self._lock:
                self._pairs.discard(pair)
            pair.pump_done()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a server that is gone would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
