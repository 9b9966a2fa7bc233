#!/usr/bin/env python3
"""faultproxy.py - a fault-injecting HTTP proxy in front of an S3 server, for tests.

    faultproxy.py UPSTREAM_URL [--tls PEMFILE]
        listen on 127.0.0.1:<free port>, print the port, serve (over TLS with the
        certificate and key in PEMFILE when --tls is given)

Each client request takes the next action from a FIFO (empty FIFO: "ok"):
    ok            forward to UPSTREAM and relay the reply
    500 | 503     answer an S3-style error (InternalError / SlowDown) without forwarding
    429           answer 429 SlowDown
    delay:MS      wait MS milliseconds, then forward
    reset         forward, send the reply headers and half the body, then reset the connection
    drop          reset the connection before any reply
    corrupt       forward, flip one byte in the middle of the reply body
The control API is served by the proxy itself, never forwarded:
    POST /__fault/plan   body: actions separated by spaces (appended to the FIFO)
    POST /__fault/always body: one action applied to every request until cleared ("" clears)
    GET  /__fault/stats  "requests=N" (client requests seen, control requests excluded)
The proxy exits when its stdin closes, so it never outlives the test."""
import http.client
import http.server
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

UP = urllib.parse.urlsplit(sys.argv[1])
lock = threading.Lock()
plan = []
always = [""]
stats = {"requests": 0}

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self):
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _control(self, body):
        path = self.path.split("?")[0]
        with lock:
            if path == "/__fault/plan":
                plan.extend(body.decode().split())
            elif path == "/__fault/always":
                always[0] = body.decode().strip()
                plan.clear()
            elif path == "/__fault/stats":
                return self._reply(200, f"requests={stats['requests']}".encode())
            elif path == "/__fault/reset":
                plan.clear()
                always[0] = ""
                stats["requests"] = 0
        self._reply(200, b"ok")

    def _handle(self):
        body = self._body()
        if self.path.startswith("/__fault/"):
            return self._control(body)
        with lock:
            stats["requests"] += 1
            action = always[0] or (plan.pop(0) if plan else "ok")
        if action in ("500", "503", "429"):
            code = {"500": "InternalError", "503": "SlowDown", "429": "SlowDown"}[action]
            xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                   f"<Message>injected</Message></Error>").encode()
            return self._reply(int(action), xml, [("Content-Type", "application/xml")])
        if action == "drop":
            return self._reset()
        if action.startswith("delay:"):
            time.sleep(int(action[6:]) / 1000.0)
        conn = http.client.HTTPConnection(UP.hostname, UP.port, timeout=60)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP and k.lower() != "content-length":
                conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        hdrs = [(k, v) for k, v in r.getheaders() if k.lower() not in HOP | {"content-length"}]
        if action == "corrupt" and data:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
        if action == "reset" and self.command != "HEAD":
            self.send_response(r.status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            return self._reset()
        if self.command == "HEAD":
            self.send_response(r.status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", r.getheader("Content-Length") or "0")
            self.end_headers()
            return
        self._reply(r.status, data, hdrs)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client that gave up (timeout, cancel) closed its end: not an error here
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) > 3 and sys.argv[2] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdin.read()  # exit when the test closes our stdin (or dies)


if __name__ == "__main__":
    main()
