"""A fault-injecting HTTP proxy between an S3 client and the test S3 server.

Every request is forwarded to the upstream endpoint, except those the fault plan picks: they get a
503 SlowDown, a 500 InternalError, a dropped connection, or an answer delayed past the client's read
timeout. With `permanent`, every request is refused with 403 AccessDenied instead.
"""
from __future__ import annotations

import http.client
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
ERROR_BODY = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected fault'
              '</Message></Error>')


class FaultProxy:
    """Run with `with FaultProxy(upstream, every=3, delay=2.0) as proxy: ... proxy.url`.

    Request number n (from 1) is faulted when n % every == 0, cycling through the four faults; a delayed
    answer waits `delay` seconds first (set the client's read timeout below it). `counts` tallies what
    was done.
    """

    def __init__(self, upstream: str, every: int = 3, delay: float = 2.0, permanent: bool = False):
        self.upstream = urlparse(upstream)
        self.every, self.delay, self.permanent = every, delay, permanent
        self.counts = {"forwarded": 0, "503": 0, "500": 0, "dropped": 0, "delayed": 0, "403": 0}
        self._numbers = itertools.count(1)
        self._faults = itertools.cycle(["503", "500", "dropped", "delayed"])
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FaultProxy":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _plan(self) -> str:
        with self._lock:
            number = next(self._numbers)
            fault = "403" if self.permanent else (next(self._faults) if number % self.every == 0 else "forwarded")
            self.counts[fault] += 1
            return fault

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        chunk = self.rfile.read(size + 2)[:size]
                        if not size:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(chunk)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _error(self, status: int, code: str) -> None:
                body = ERROR_BODY.format(code=code).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                body = self._body()
                fault = proxy._plan()
                if fault == "403":
                    return self._error(403, "AccessDenied")
                if fault == "503":
                    return self._error(503, "SlowDown")
                if fault == "500":
                    return self._error(500, "InternalError")
                if fault == "dropped":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "delayed":
                    time.sleep(proxy.delay)
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                try:
                    self.send_response(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        if key.lower() not in HOP_BY_HOP:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a delayed answer): it retries
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        return Handler
