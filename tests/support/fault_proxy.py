"""A fault-injecting HTTP proxy between bosar-deploy and moto, for the tests only.

Usage: fault_proxy.py LISTEN_PORT UPSTREAM_PORT [OPERATION:FAULT:COUNT ...]

Requests are relayed to moto on 127.0.0.1:UPSTREAM_PORT; the first COUNT calls of OPERATION
(ECS names it in X-Amz-Target, ELBv2 as Action= in the form body) get FAULT instead:
  reset  the request reaches moto (which acts on it), then the connection is reset: the
         answer is lost after the call took effect
  503    a ServerException answer; moto never sees the request
"""

import http.client
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM = int(sys.argv[1]), int(sys.argv[2])
FAULTS = {}
for spec in sys.argv[3:]:
    op, kind, count = spec.split(":")
    FAULTS[op] = [kind, int(count)]
LOCK = threading.Lock()
HOP = {"connection", "transfer-encoding", "content-length", "keep-alive"}


def operation(headers, body):
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    for kv in body.decode("latin-1").split("&"):
        if kv.startswith("Action="):
            return kv[len("Action="):]
    return ""


def take_fault(op):
    with LOCK:
        f = FAULTS.get(op)
        if f and f[1] > 0:
            f[1] -= 1
            return f[0]
    return None


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.relay()

    def do_POST(self):
        self.relay()

    def relay(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = take_fault(operation(self.headers, body))
        if fault == "503":
            self.answer(503, [("Content-Type", "application/x-amz-json-1.1")],
                        b'{"__type":"ServerException","message":"injected by fault_proxy"}')
            return
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        conn.request(self.command, self.path, body, headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.answer(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP], data)

    def answer(self, status, headers, data):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
