"""The embedded AWS endpoint: moto server on 127.0.0.1, made safe for concurrent clients.

moto's backends are not thread-safe (concurrent DynamoDB writes and queries fail with
"dictionary changed size during iteration"), while werkzeug serves each connection on its
own thread. Real AWS serialises per item anyway, so we serialise requests with one lock —
except SQS long polls (ReceiveMessage), which would otherwise block every other caller for
their whole wait.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gip.errors import GipError

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _is_long_poll(environ: Environ) -> bool:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target == "AmazonSQS.ReceiveMessage":
        return True
    return "Action=ReceiveMessage" in environ.get("QUERY_STRING", "")


class SerializedApp:
    """WSGI middleware: one request at a time into moto, long polls excepted."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.RLock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if _is_long_poll(environ):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))


_WERKZEUG_LOG = logging.getLogger("werkzeug")
_date: tuple[int, str] = (0, "")  # the Date header of the current second


@functools.cache
def request_handler() -> type[Any]:
    """moto's request handler, without the per-request costs nobody sees: the access-log line is
    formatted only when werkzeug's logger would print it (``start`` sets it to ERROR), and the
    Date header is formatted once a second (it has one-second resolution)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class Handler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if _WERKZEUG_LOG.isEnabledFor(logging.INFO):
                super().log_request(code, size)

        def date_time_string(self, timestamp: float | None = None) -> str:
            global _date
            if timestamp is not None:
                return str(super().date_time_string(timestamp))
            now = int(time.time())
            second, text = _date
            if second != now:
                text = str(super().date_time_string(now))
                _date = (now, text)
            return text

    return Handler


@functools.cache
def dispatcher() -> type[Any]:
    """moto's dispatcher, remembering which backend serves each host it has seen: moto lists its
    package directory (a stat per service, ~250) and then tries every backend's URL patterns
    on each request, to find the same answer every time."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Callable[[Any], Any]) -> None:
            super().__init__(create_app)
            self.known: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:  # called under self.lock
            if host not in self.known:
                backend = super().get_backend_for_host(host)
                if len(self.known) >= 512:  # hosts come from request headers: keep the memory bounded
                    return backend
                self.known[host] = backend
            return self.known[host]

    return Dispatcher


Job = tuple[Any, Any]  # (request socket, client address)


@functools.cache
def server_class() -> type[Any]:
    """werkzeug's threaded server, with its handler threads kept for the next connection.

    Every AWS call is a connection of its own (werkzeug closes each), and socketserver starts a
    thread per connection: ~15% of a busy endpoint's CPU (tests/test_pool_race.py under py-spy).
    Here a connection goes to an idle handler thread, or to a new one when none is idle, as
    before (long polls hold theirs, as before); a thread idle for ``idle_s`` ends."""
    from werkzeug.serving import ThreadedWSGIServer

    class Server(ThreadedWSGIServer):
        idle_s = 5.0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
            self._idle = 0  # handler threads committed to take the next job
            self._idle_lock = threading.Lock()

        def process_request(self, request: Any, client_address: Any) -> None:
            with self._idle_lock:
                if self._idle:
                    self._idle -= 1
                    self._jobs.put((request, client_address))
                    return
            threading.Thread(target=self._handle, args=((request, client_address),), daemon=True,
                             name="embedded-aws-handler").start()

        def _handle(self, job: Job | None) -> None:
            while job is not None:
                self.process_request_thread(*job)
                with self._idle_lock:
                    self._idle += 1
                try:
                    job = self._jobs.get(timeout=self.idle_s)
                except queue.Empty:
                    with self._idle_lock:  # a job put meanwhile was meant for a committed thread
                        try:
                            job = self._jobs.get_nowait()
                        except queue.Empty:
                            self._idle -= 1
                            job = None

        def server_close(self) -> None:
            with self._idle_lock:
                for _ in range(self._idle):
                    self._jobs.put(None)  # the idle threads end now
                self._idle = 0
            super().server_close()

    return Server


def _backend_app(create: Callable[[Any], Any], service: Any) -> Any:
    """moto's app for ``service``; CloudFormation's parses templates with libyaml
    (:mod:`gip.local.moto_yaml`), patched when its first request imports it."""
    if service == "cloudformation":
        from gip.local import moto_yaml

        moto_yaml.install()
    return create(service)


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise GipError(f"port {port} on {host} is already in use "
                           f"(choose another with --aws-port): {exc.strerror}") from exc


class EmbeddedAws:
    """Start and stop a moto server on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566, *,
                 wrap: Callable[[Any], Any] | None = None) -> None:
        self.host, self.port = host, port
        self.wrap = wrap  # optional WSGI middleware around the serialised app (local mode's call counter)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmbeddedAws:
        from moto.moto_server.werkzeug_app import create_backend_app

        _WERKZEUG_LOG.setLevel(logging.ERROR)  # no line per request
        for key, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(key, value)
        from gip.local import moto_transactions, shared_loader

        moto_transactions.install()  # moto's transaction backup copies whole tables (docs/local.md)
        shared_loader.install()  # the functions' threads share one botocore loader (cold bursts)
        app: Any = SerializedApp(dispatcher()(functools.partial(_backend_app, create_backend_app)))
        if self.wrap is not None:
            app = self.wrap(app)
        _check_port_free(self.host, self.port)  # werkzeug would print and sys.exit() instead
        try:
            self._server = server_class()(self.host, self.port, app, request_handler())
        except OSError as exc:
            raise GipError(f"port {self.port} on {self.host} is already in use "
                           f"(choose another with --aws-port): {exc.strerror}") from exc
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="embedded-aws",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> EmbeddedAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
