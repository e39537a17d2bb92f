"""One client process: the stream consumer, its control-plane follower, the router between
them and the stores, and the read API, wired together and stopped together.

Stage 1 (`client.mode = mongo`) has no follower and no MySQL. From stage 2 on
(`client.mode = control`) the follower reads the control row and heartbeats, reporting the
consumer's counters and the router's shadow-read results, and the router writes in the mode
the follower hands it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from lazyshift import logs
from lazyshift.client.api import ReadAPI
from lazyshift.client.consumer import Consumer, ConsumerOptions, Counters
from lazyshift.client.follower import Follower, default_client_id
from lazyshift.client.source import Partition
from lazyshift.config import Settings
from lazyshift.core.mongo_store import MongoStore
from lazyshift.errors import UsageError
from lazyshift.router import Router


@dataclass(frozen=True)
class ClientOptions:
    partition: Partition
    client_id: str | None = None
    exit_at_end: bool = False


class ClientApp:
    def __init__(
        self, settings: Settings, options: ClientOptions, stop: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        part = str(options.partition)
        self.mongo = MongoStore.open(settings)
        self.follower: Follower | None = None
        if settings.client.mode == "control":
            self.follower = Follower(
                settings,
                options.client_id or default_client_id(part),
                part,
                self.stop,
                stats=self._stats,
                write_connection_id=self._write_connection_id,
            )
        self.router = Router(settings, self.mongo, follower=self.follower)
        self.consumer = Consumer(
            self.router,
            ConsumerOptions(
                settings.source.host,
                settings.source.port,
                options.partition,
                exit_at_end=options.exit_at_end,
            ),
            stop=self.stop,
        )
        self.api: ReadAPI | None = None
        if settings.client.http_port >= 0:
            host, port = settings.client.http_host, settings.client.http_port
            try:
                self.api = ReadAPI(
                    self.router,
                    host,
                    port,
                    health=self._health,
                    counters=self.consumer.counters.as_dict,
                )
            except OSError as exc:
                self.mongo.close()
                raise UsageError(
                    f"cannot serve the read API on {host}:{port}: {exc}",
                    hint="pick another --http-port (or -1 for none)",
                ) from exc

    def _stats(self) -> dict[str, Any]:
        return {**self.consumer.counters.as_dict(), "shadow": dict(self.router.shadow_counts)}

    def _write_connection_id(self) -> int | None:
        return self.router.writer_connection_id()

    def _health(self) -> dict[str, Any]:
        return {"counters": self.consumer.counters.as_dict()}

    def run(self) -> Counters:
        """Consume until stopped (or the end of a finite stream); then stop everything."""
        if self.api is not None:
            self.api.start()
        if self.follower is not None:
            self.follower.start()
        logs.event(
            "client.start",
            mode_source=self.settings.client.mode,
            partition=str(self.consumer.opts.partition),
            source=f"{self.settings.source.host}:{self.settings.source.port}",
            http_port=self.api.port if self.api else None,
        )
        try:
            counters = self.consumer.run()
        finally:
            self.stop.set()
            if self.api is not None:
                self.api.stop()
            if self.follower is not None:
                self.follower.join()
                self.follower.deregister()
            self.mongo.close()
        logs.event("client.stop", **counters.as_dict())
        return counters
