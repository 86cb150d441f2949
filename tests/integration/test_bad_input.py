"""Hostile and broken clients. After each case another live stream on the same server must still
play over HTTP-FLV and the server's resident memory must stay bounded."""

import os
import random
import select
import socket
import struct
import time
import unittest

import harness
from harness import (HOST, RtmpClient, RtmpClosed, ServerTestCase, amf0_encode, encode_chunks,
                     find_stream, flv_time_to_keyframe, open_flv, wait_closed, wait_for)

APP, REF = "live", "ref"
HANDSHAKE_TIMEOUT_MS = 2000
SEND_TIMEOUT_MS = 3000
REQUEST_TIMEOUT_MS = 2000
# Growth of the server's RSS over its value with the reference stream warm, MiB.
RSS_BOUND_MIB = 64
SLOW_READER_RSS_BOUND_MIB = 32
# How long a refused connection may stay open, s.
CLOSE_WITHIN = HANDSHAKE_TIMEOUT_MS / 1000 + 3


class BadInputTests(ServerTestCase):
    server_env = {
        "CASTMESH_RTMP__HANDSHAKE_TIMEOUT_MS": HANDSHAKE_TIMEOUT_MS,
        "CASTMESH_HTTPFLV__SEND_TIMEOUT_MS": SEND_TIMEOUT_MS,
        "CASTMESH_RTMP__SEND_TIMEOUT_MS": SEND_TIMEOUT_MS,
        "CASTMESH_SERVER__REQUEST_TIMEOUT_MS": REQUEST_TIMEOUT_MS,
    }

    @classmethod
    def setUpServer(cls):
        cls.publisher = cls.start_class_publisher(APP, REF)
        cls.wait_stream_live(APP, REF, segments=2, timeout=25)
        # Warm the player path once so buffers allocated by the first player are in the baseline.
        flv_time_to_keyframe(cls.server.http_port, APP, REF, timeout=5)
        time.sleep(1.0)
        cls.rss_baseline_kib = cls.server.rss_kib()

    # ---- helpers
    def assert_still_serves(self, case):
        self.assertTrue(self.server.alive(), "%s: castmesh died\n%s" % (case, self.server.log_tail()))
        self.assertTrue(self.publisher.alive(), "%s: reference publisher died" % case)
        t, _ = flv_time_to_keyframe(self.server.http_port, APP, REF, timeout=5)
        self.assertLess(t, 2.0, "%s: reference stream keyframe after %.2f s" % (case, t))
        growth_mib = (self.server.rss_kib() - self.rss_baseline_kib) / 1024
        self.assertLess(growth_mib, RSS_BOUND_MIB, "%s: RSS grew by %.1f MiB" % (case, growth_mib))

    def rtmp_after_handshake(self):
        c = self.closing(RtmpClient(self.server.rtmp_port, timeout=5))
        c.handshake()
        return c

    def assert_closed(self, sock, case, within=CLOSE_WITHIN):
        self.assertTrue(wait_closed(sock, within),
                        "%s: server kept the connection open for %.1f s" % (case, within))

    # ---- raw garbage and broken handshakes
    def test_random_bytes_on_rtmp_port(self):
        rnd = random.Random(1234)
        for i in range(4):
            data = bytes(rnd.getrandbits(8) for _ in range(64 * 1024))
            if data[0] == 3:
                data = b"\x07" + data[1:]
            s = self.closing(socket.create_connection((HOST, self.server.rtmp_port), timeout=5))
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # already refused
            self.assert_closed(s, "random bytes #%d" % i)
        self.assert_still_serves("random bytes")

    def test_random_chunks_after_handshake(self):
        rnd = random.Random(99)
        for i in range(4):
            c = self.rtmp_after_handshake()
            data = bytes(rnd.getrandbits(8) for _ in range(256 * 1024))
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            c.close()
        self.assert_still_serves("random chunk stream")

    def test_bad_handshake_version(self):
        s = self.closing(socket.create_connection((HOST, self.server.rtmp_port), timeout=5))
        s.sendall(b"\x01" + os.urandom(1536))
        self.assert_closed(s, "handshake version 0x01")
        self.assert_still_serves("bad handshake version")

    def test_truncated_handshake(self):
        s = self.closing(socket.create_connection((HOST, self.server.rtmp_port), timeout=5))
        s.sendall(b"\x03" + os.urandom(700))  # half a C1, then silence
        t0 = time.monotonic()
        self.assert_closed(s, "truncated C1")
        self.assertGreaterEqual(time.monotonic() - t0, HANDSHAKE_TIMEOUT_MS / 1000 - 0.5,
                                "closed before the handshake timeout")
        self.assert_still_serves("truncated handshake")

    # ---- protocol control abuse
    def send_set_chunk_size(self, value, case):
        c = self.rtmp_after_handshake()
        c.send(encode_chunks(2, 1, 0, struct.pack(">I", value)))
        # Something the server would otherwise have to parse with that chunk size.
        try:
            c.send(encode_chunks(3, 20, 0, bytes(amf0_encode("connect")) + bytes(amf0_encode(1.0)) +
                                 bytes(amf0_encode({"app": APP}))))
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assert_closed(c.sock, case)
        self.assert_still_serves(case)

    def test_chunk_size_zero(self):
        self.send_set_chunk_size(0, "Set Chunk Size 0")

    def test_chunk_size_over_16mib(self):
        self.send_set_chunk_size(16 * 1024 * 1024 + 1, "Set Chunk Size 16 MiB + 1")

    def test_message_length_over_limit(self):
        c = self.rtmp_after_handshake()
        # Header announces a 16 MiB - 1 command message (limit: 8 MiB); only 128 bytes follow.
        c.send(encode_chunks(3, 20, 0, b"\x02" + b"\x00" * 127, length=0xFFFFFF)[:12 + 128])
        t0 = time.monotonic()
        self.assert_closed(c.sock, "message length 16 MiB - 1")
        # Refused on the header, not after waiting for a timeout.
        self.assertLess(time.monotonic() - t0, 1.5, "oversized message not refused at its header")
        self.assert_still_serves("message length over limit")

    def test_truncated_amf_in_connect(self):
        bodies = [
            bytes(amf0_encode("connect")) + b"\x00\x3f\xf0",                     # number cut short
            bytes(amf0_encode("connect")) + bytes(amf0_encode(1.0)) + b"\x03\x00\x03app\x02\x00\x10li",
            b"\x02\x00\x07conn",                                                   # name cut short
            bytes(amf0_encode("connect")) + bytes(amf0_encode(1.0)) + b"\x03" + b"\x00\x01a\x03" * 40,
        ]
        for i, body in enumerate(bodies):
            c = self.rtmp_after_handshake()
            c.send(encode_chunks(3, 20, 0, body))
            try:
                cmd = c.wait_command(("_result", "_error", "onStatus"), timeout=CLOSE_WITHIN)
                self.assertNotEqual(cmd[0], "_result", "truncated connect #%d accepted: %r" % (i, cmd))
            except RtmpClosed:
                pass  # refused by closing
            except AssertionError as e:
                if "timed out" not in str(e):
                    raise
                self.fail("truncated connect #%d: no answer and no close in %.0f s" % (i, CLOSE_WITHIN))
            c.close()
        self.assert_still_serves("truncated AMF in connect")

    # ---- malformed stream names
    def refused(self, action, name):
        """publish/play `name` in app `live`; returns a description of how it was refused, or
        fails when it was accepted."""
        c = self.rtmp_after_handshake()
        try:
            c.connect(APP)
            sid = c.create_stream()
            if action == "publish":
                c.publish(sid, name)
            else:
                c.play(sid, name)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                info = c.wait_status(timeout=max(0.1, deadline - time.monotonic()))
                code = str(info.get("code", ""))
                level = str(info.get("level", ""))
                if code in ("NetStream.Publish.Start", "NetStream.Play.Start"):
                    self.fail("%s of %r accepted (%s)" % (action, name[:40], code))
                if level == "error" or code.endswith(("BadName", "Failed", "StreamNotFound", "Rejected")):
                    return code
            self.fail("%s of %r: no answer within 5 s" % (action, name[:40]))
        except RtmpClosed:
            return "closed"
        except AssertionError as e:
            if "timed out" in str(e):
                self.fail("%s of %r: no refusal and no close within 5 s" % (action, name[:40]))
            raise
        finally:
            c.close()

    def test_malformed_names_refused(self):
        names = ["../x", "", "x" * 4096, "a/../../b", "..", "bad\x01name"]
        for name in names:
            for action in ("publish", "play"):
                with self.subTest(action=action, name=name[:20]):
                    self.refused(action, name)
        doc = self.server.get_json("/api/v1/streams")
        for name in names:
            self.assertIsNone(find_stream(doc, APP, name), "stream %r exists" % name[:40])
        for path in ("/live/live/..%2Fx.flv", "/live/live/.flv", "/live/live/%s.flv" % ("x" * 4096),
                     "/live/..%2F..%2Fetc%2Fpasswd.m3u8", "/live/live/..%2Fx.m3u8",
                     "/live/live/..%2F..%2Fx-1.ts"):
            status, _, body = self.server.get(path)
            self.assertTrue(400 <= status < 500, "GET %s -> %d %r" % (path[:60], status, body[:100]))
        self.assert_still_serves("malformed names")

    # ---- slow HTTP-FLV reader
    def test_slow_httpflv_reader_dropped(self):
        closed_before = self.server.metric_sum("castmesh_slow_subscribers_closed_total")
        rss0 = self.server.rss_kib()
        flv, _ = open_flv(self.server.http_port, APP, REF, rcvbuf=4096)
        self.closing(flv)
        peak = rss0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(0.5)
            peak = max(peak, self.server.rss_kib())
        growth_mib = (peak - rss0) / 1024
        self.assertLess(growth_mib, SLOW_READER_RSS_BOUND_MIB,
                        "RSS grew by %.1f MiB for one stalled reader" % growth_mib)
        closed_after = self.server.metric_sum("castmesh_slow_subscribers_closed_total")
        socket_closed = wait_closed(flv.sock, 3)
        self.assertTrue(closed_after > closed_before or socket_closed,
                        "stalled HTTP-FLV reader neither closed nor counted "
                        "(castmesh_slow_subscribers_closed_total %s -> %s)" % (closed_before, closed_after))
        self.assert_still_serves("slow HTTP-FLV reader")

    def test_slow_rtmp_player_dropped(self):
        closed_before = self.server.metric_sum("castmesh_slow_subscribers_closed_total")
        rss0 = self.server.rss_kib()
        c = RtmpClient(self.server.rtmp_port, timeout=5)
        self.closing(c)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.handshake()
        c.connect(APP)
        c.play(c.create_stream(), REF)
        c.first_keyframe(5)  # playing; from now on nothing is read (and nothing acknowledged)
        peak = rss0
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            time.sleep(0.5)
            peak = max(peak, self.server.rss_kib())
        growth_mib = (peak - rss0) / 1024
        self.assertLess(growth_mib, SLOW_READER_RSS_BOUND_MIB,
                        "RSS grew by %.1f MiB for one stalled RTMP player" % growth_mib)
        closed_after = self.server.metric_sum("castmesh_slow_subscribers_closed_total")
        socket_closed = wait_closed(c.sock, 3)
        self.assertTrue(closed_after > closed_before or socket_closed,
                        "stalled RTMP player neither closed nor counted "
                        "(castmesh_slow_subscribers_closed_total %s -> %s)" % (closed_before, closed_after))
        self.assert_still_serves("slow RTMP player")

    def test_http_slow_request_headers_closed(self):
        n = 100
        conns = []
        try:
            for _ in range(n):
                s = socket.create_connection((HOST, self.server.http_port), timeout=5)
                s.sendall(b"GET /live/live/ref.flv HTTP/1.1\r\nHost: x\r\n")  # never finished
                conns.append(s)
            t0 = time.monotonic()
            open_after = [s for s in conns if not wait_closed(s, max(0.05, t0 + REQUEST_TIMEOUT_MS / 1000 + 3
                                                                   - time.monotonic()))]
            self.assertEqual(len(open_after), 0, "%d of %d connections with unfinished request "
                             "headers still open after %.1f s (request timeout %d ms)" %
                             (len(open_after), n, time.monotonic() - t0, REQUEST_TIMEOUT_MS))
        finally:
            for s in conns:
                s.close()
        self.assert_still_serves("unfinished HTTP request headers")

    # ---- idle connections
    def test_idle_connections_closed_after_handshake_timeout(self):
        n = 1000
        conns = []
        try:
            t0 = time.monotonic()
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(2)
                s.connect((HOST, self.server.rtmp_port))
                s.setblocking(False)
                conns.append(s)
            connected_in = time.monotonic() - t0
            # The live stream still plays while they are open.
            t, _ = flv_time_to_keyframe(self.server.http_port, APP, REF, timeout=5)
            self.assertLess(t, 2.0)
            poller = select.poll()
            by_fd = {}
            for s in conns:
                poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
                by_fd[s.fileno()] = s
            close_times = []
            deadline = t0 + connected_in + HANDSHAKE_TIMEOUT_MS / 1000 + 5
            while by_fd and time.monotonic() < deadline:
                for fd, _ in poller.poll(200):
                    s = by_fd.get(fd)
                    if s is None:
                        continue
                    try:
                        data = s.recv(4096)
                    except (ConnectionResetError, BlockingIOError) as e:
                        data = b"" if isinstance(e, ConnectionResetError) else None
                    if data == b"":
                        close_times.append(time.monotonic() - t0)
                        poller.unregister(fd)
                        del by_fd[fd]
                    elif data:
                        self.fail("server sent %d bytes to a client that sent nothing" % len(data))
            self.assertEqual(len(by_fd), 0, "%d of %d idle connections still open %.1f s after "
                             "connecting (handshake timeout %d ms)" %
                             (len(by_fd), n, deadline - t0, HANDSHAKE_TIMEOUT_MS))
            close_times.sort()
            median = close_times[len(close_times) // 2]
            self.assertGreaterEqual(median, HANDSHAKE_TIMEOUT_MS / 1000 - 0.5,
                                    "idle connections closed before the handshake timeout "
                                    "(median %.2f s)" % median)
        finally:
            for s in conns:
                s.close()
        self.assert_still_serves("1000 idle connections")


if __name__ == "__main__":
    unittest.main(verbosity=2)
