"""A minimal RFC 6455 WebSocket client (Python 3 standard library only) for integration tests.

Handshake (section 4.1, Sec-WebSocket-Accept checked), masked client frames (5.3), text / binary /
close / ping / pong (5.5, 5.6), fragmented messages reassembled (5.4), reads bounded by a
timeout. Only plain TCP (ws://) to loopback is supported.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    """The server refused the upgrade; `status` is the HTTP status, `body` the response body."""

    def __init__(self, status, body):
        super().__init__("WebSocket upgrade refused: HTTP %s %r" % (status, body[:300]))
        self.status = status
        self.body = body


class Closed(Exception):
    """The connection ended: `code` is the close status the server sent (None when the TCP
    connection ended without a close frame, 1005 for a close frame without a status)."""

    def __init__(self, code, reason=""):
        super().__init__("WebSocket closed (code %s %r)" % (code, reason))
        self.code = code
        self.reason = reason


class WsClient:
    """One client connection. recv_* raise socket.timeout (TimeoutError) when nothing arrives
    in time and Closed when the server closes."""

    def __init__(self, host, port, path, headers=None, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.close_code = None
        self.closed = False
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = self._read_until(b"\r\n\r\n", timeout)
            status_line, *hdr_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split()[1])
            hdrs = {}
            for l in hdr_lines:
                if ":" in l:
                    k, v = l.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            if status != 101:
                body = self.buf
                n = int(hdrs.get("content-length", "0") or 0)
                deadline = time.monotonic() + timeout
                while len(body) < n and time.monotonic() < deadline:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                raise HandshakeError(status, body)
            want = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            if hdrs.get("sec-websocket-accept") != want:
                raise AssertionError("bad Sec-WebSocket-Accept %r (want %r)" % (
                    hdrs.get("sec-websocket-accept"), want))
        except BaseException:
            self.sock.close()
            raise

    # ---------------------------------------------------------------- raw I/O
    def _read_until(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no HTTP response head")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(None, "EOF during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out reading a frame")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
                raise Closed(self.close_code, "EOF")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        """Sends one frame (masked unless mask=False, which a server must reject)."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
            hdr += key
        self.sock.sendall(hdr + payload)

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next frame."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._read_exact(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8, deadline))[0]
        if b1 & 0x80:
            raise AssertionError("server sent a masked frame (RFC 6455 5.1)")
        payload = self._read_exact(n, deadline)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=5.0):
        """(opcode, payload) of the next data message; answers pings, records a close (then raises
        Closed with its code after echoing it)."""
        deadline = time.monotonic() + timeout
        parts, first_op = [], None
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_code = code
                try:
                    if not self.closed:
                        self.send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                self.closed = True
                self._finish_close()
                raise Closed(code, payload[2:].decode("utf-8", "replace"))
            if op in (OP_TEXT, OP_BINARY):
                first_op = op
            parts.append(payload)
            if fin:
                return first_op, b"".join(parts)

    def _finish_close(self, timeout=2.0):
        """After the closing handshake: wait (bounded) for the server to close the TCP
        connection (RFC 6455 7.1.1), then close ours, as a browser does."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(65536):
                    break
        except OSError:
            pass
        self.sock.close()

    # ---------------------------------------------------------------- JSON helpers
    def send_json(self, obj):
        self.send_frame(OP_TEXT, json.dumps(obj))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def recv_json(self, timeout=5.0):
        op, payload = self.recv_message(timeout)
        if op != OP_TEXT:
            raise AssertionError("expected a text frame, got opcode %d" % op)
        return json.loads(payload.decode("utf-8"))

    def recv_type(self, types, timeout=5.0, skip=("presence", "pong", "member", "live")):
        """The next message whose type is in `types` (a str or tuple); messages whose type is in
        `skip` are dropped; any other message fails."""
        if isinstance(types, str):
            types = (types,)
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv_json(max(0.0, deadline - time.monotonic()))
            if m.get("type") in types:
                return m
            if m.get("type") not in skip:
                raise AssertionError("expected %s, got %s" % (types, json.dumps(m)[:500]))

    def drain(self, quiet=0.3):
        """Receives and returns every message until none arrives for `quiet` s."""
        out = []
        while True:
            try:
                out.append(self.recv_json(quiet))
            except (socket.timeout, TimeoutError):
                return out

    def wait_close(self, timeout=5.0):
        """Reads until the server closes; returns the close code (None on EOF without close).
        The messages seen before are returned too: (code, [messages])."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                op, payload = self.recv_message(max(0.0, deadline - time.monotonic()))
                if op == OP_TEXT:
                    seen.append(json.loads(payload.decode("utf-8")))
            except Closed as c:
                return c.code, seen

    def close(self, code=1000):
        if not self.closed:
            try:
                self.send_frame(OP_CLOSE, struct.pack("!H", code))
            except OSError:
                pass
            self.closed = True
        self.sock.close()
