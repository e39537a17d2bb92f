"""The client's read API: GET /shipments/{key}, /healthz, /metrics (Prometheus text).

Reads never fail because of the migration: a miss in MySQL falls back to MongoDB while
that is allowed (mysql-primary), and a transition never blocks a read. A store that is down
is reported as 503 with the reason, never as a wrong answer.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import PyMongoError

from lazyshift import logs
from lazyshift.core.document import to_json
from lazyshift.router import Router, StoreUnavailable


class ReadAPI:
    def __init__(
        self, router: Router, host: str, port: int, health: Any = None, counters: Any = None
    ) -> None:
        self.router = router
        self.health = health or (lambda: {})
        if counters is not None:
            router.metrics.registry.register(_CountersCollector(counters))
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                api.handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # structured logs only

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="read-api", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        logs.event("http.listening", port=self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        path = req.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(req, 200, {"status": "ok", "mode": self.router.mode, **self.health()})
        elif path == "/metrics":
            body = generate_latest(self.router.metrics.registry)
            req.send_response(200)
            req.send_header("Content-Type", CONTENT_TYPE_LATEST)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
        elif path.startswith("/shipments/") and len(path) > len("/shipments/"):
            key = unquote(path[len("/shipments/") :])
            try:
                result = self.router.read(key)
            except (StoreUnavailable, PyMongoError) as exc:
                self._send(req, 503, {"error": str(exc)})
                return
            if result.doc is None:
                self._send(req, 404, {"error": f"no shipment {key!r}", "mode": result.mode})
                return
            self._send(
                req,
                200,
                to_json(result.doc),
                headers={"X-Lazyshift-Mode": result.mode, "X-Lazyshift-Store": result.store},
            )
        else:
            self._send(req, 404, {"error": "try /shipments/{key}, /healthz or /metrics"})

    @staticmethod
    def _send(
        req: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body, default=str, ensure_ascii=False).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)


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
