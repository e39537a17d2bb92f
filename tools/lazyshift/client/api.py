"""The client's read API: GET /shipments/{key}, /healthz, /metrics (Prometheus text).

Reads never fail because of the migration: a miss in MySQL falls back to MongoDB while
that is allowed (mysql-primary), and a transition never blocks a read. A store that is down
is reported as 503 with the reason, never as a wrong answer.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import PyMongoError

from lazyshift import logs
from lazyshift.core.document import to_json
from lazyshift.router import Router, StoreUnavailable

# Reads run on a fixed pool of threads, each keeping one MySQL connection (the router's
# per-thread reader): at most READ_WORKERS connections, reused, whatever the HTTP load.
READ_WORKERS = 8
# Reads waiting for a worker beyond this are answered 503 at once instead of queueing.
MAX_QUEUED_READS = 512
# Open connections beyond this evict the oldest one that has not sent a whole request yet.
MAX_CONNECTIONS = 4096
HEADER_TIMEOUT_S = 10.0  # a connection that sends no whole request in this time is closed
WRITE_TIMEOUT_S = 10.0  # a client that does not read its answer is dropped
MAX_HEADER_BYTES = 16 * 1024

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
REASONS |= {503: "Service Unavailable"}


class ReadAPI:
    """An asyncio HTTP/1.1 server on its own thread. Connections cost no thread while they
    wait (1,500 half-open ones do not stop /healthz, which never touches a store); a read
    goes to the bounded worker pool only once its request is complete."""

    def __init__(
        self,
        router: Router,
        host: str,
        port: int,
        health: Any = None,
        counters: Any = None,
        *,
        workers: int = READ_WORKERS,
    ) -> None:
        self.router = router
        self.health: Callable[[], dict[str, Any]] = health or (lambda: {})
        if counters is not None:
            router.metrics.registry.register(_CountersCollector(counters))
        # Bound here, so a port in use is an error of the constructor (the caller reports it).
        self._sock = socket.create_server((host, port), backlog=2048)
        self.port = self._sock.getsockname()[1]
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read-api")
        self._queued = 0
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # no whole request yet, oldest first
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="read-api", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        logs.event("http.listening", port=self.port)

    def stop(self) -> None:
        if self._thread.is_alive() and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(30)
        else:
            self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self._sock, limit=65536)
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for writer in list(self._open):
            writer.close()
        await server.wait_closed()

    # -- one connection ----------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            while True:
                self._waiting[writer] = None
                self._evict()
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT_S)
                except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                self._waiting.pop(writer, None)
                keep_alive = await self._request(head, writer)
                if not keep_alive:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self._waiting.pop(writer, None)
            self._open.discard(writer)
            writer.close()

    def _evict(self) -> None:
        while len(self._open) > MAX_CONNECTIONS and self._waiting:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.close()

    async def _request(self, head: bytes, writer: asyncio.StreamWriter) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or len(head) > MAX_HEADER_BYTES:
            await self._write(writer, 400, {"error": "malformed HTTP request"}, close=True)
            return False
        method, target, version = parts
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if method != "GET" or headers.get("content-length", "0") not in ("", "0"):
            await self._write(writer, 405, {"error": "only GET without a body"}, close=True)
            return False
        status, body, extra = await self._route(target.split("?", 1)[0])
        await self._write(writer, status, body, extra, close=not keep_alive)
        return keep_alive

    async def _route(self, path: str) -> tuple[int, Any, dict[str, str]]:
        if path == "/healthz":
            return 200, {"status": "ok", "mode": self.router.mode, **self.health()}, {}
        if path == "/metrics":
            text = generate_latest(self.router.metrics.registry)
            return 200, text, {"Content-Type": CONTENT_TYPE_LATEST}
        if path.startswith("/shipments/") and len(path) > len("/shipments/"):
            return await self._read(unquote(path[len("/shipments/") :]))
        return 404, {"error": "try /shipments/{key}, /healthz or /metrics"}, {}

    async def _read(self, key: str) -> tuple[int, Any, dict[str, str]]:
        if self._queued >= MAX_QUEUED_READS:
            return 503, {"error": "too many reads in flight; retry shortly"}, {}
        self._queued += 1
        try:
            result = await self._loop.run_in_executor(self._pool, self.router.read, key)
        except (StoreUnavailable, PyMongoError) as exc:
            return 503, {"error": str(exc)}, {}
        finally:
            self._queued -= 1
        if result.doc is None:
            return 404, {"error": f"no shipment {key!r}", "mode": result.mode}, {}
        headers = {"X-Lazyshift-Mode": result.mode, "X-Lazyshift-Store": result.store}
        return 200, to_json(result.doc), headers

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        headers = dict(headers or {})
        if isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body, default=str, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += [
            f"Content-Length: {len(data)}",
            f"Connection: {'close' if close else 'keep-alive'}",
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)


class _CountersCollector:
    """The stream consumer's counters as Prometheus metrics, read at scrape time."""

    def __init__(self, counters: Any) -> None:
        self.counters = counters

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        c = self.counters()
        for name in ("received", "stored", "stale", "dead_lettered", "reconnects"):
            yield CounterMetricFamily(
                f"lazyshift_stream_{name}", f"Stream messages: {name}", value=c[name]
            )
        yield GaugeMetricFamily(
            "lazyshift_stream_last_seq", "Last source sequence handled", value=c["last_seq"]
        )
        dead = CounterMetricFamily(
            "lazyshift_stream_dead_letters_by_category",
            "Dead-lettered messages by category",
            labels=["category"],
        )
        for cat, n in c["dead_letter_categories"].items():
            dead.add_metric([cat], n)
        yield dead
