"""Test harness for castmesh integration tests (Python 3 standard library only).

Starts the real `castmesh` binary on free loopback ports with a temporary working directory,
drives it with ffmpeg/ffprobe and with small stdlib clients (HTTP, HTTP-FLV, RTMP), and stops
every process it started by PID. Every wait is bounded.

The binary is taken from the environment variable CASTMESH_BIN (set by CTest).
"""

import contextlib
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HOST = "127.0.0.1"
FFMPEG = os.environ.get("FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("FFPROBE", "ffprobe")

# Shutdown grace given to every server started here, seconds; stop() asserts exit 0 within it.
SHUTDOWN_GRACE_SECS = 3
# Slack on top of the grace for process teardown, seconds.
EXIT_SLACK_SECS = 1.5


def castmesh_bin():
    path = os.environ.get("CASTMESH_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "build-itest", "src", "castmesh")
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise AssertionError(
            "castmesh binary not found or not executable: %s (set CASTMESH_BIN)" % path)
    return path


def raise_nofile_limit(wanted=16384):
    """Raises RLIMIT_NOFILE (soft) towards `wanted`; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


raise_nofile_limit()


def free_ports(n):
    """Returns `n` distinct loopback TCP ports that were free a moment ago (bind to port 0)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` s pass
    (AssertionError naming `what` and the last exception seen, if any)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError, http.client.HTTPException, AssertionError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s%s" % (
                timeout, what, "" if last_exc is None else " (last error: %r)" % (last_exc,)))
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Processes

class ProcessSet:
    """Processes started by a test; kill_all() ends each one by its PID (SIGKILL) and reaps it."""

    def __init__(self):
        self.procs = []

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        self.procs = []


def terminate(proc, timeout=5.0, sig=signal.SIGTERM):
    """Sends `sig` to `proc` by PID, waits up to `timeout` s, then SIGKILLs. Returns rc."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return proc.returncode


def child_env(overrides=None):
    """The environment for a child: ours without any CASTMESH_* variable, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASTMESH_")}
    if overrides:
        env.update({k: str(v) for k, v in overrides.items()})
    return env


def run(args, timeout, env=None, cwd=None):
    """Runs a command to completion (killed by PID after `timeout` s).
    Returns (returncode, stdout, stderr, elapsed_s); returncode None on timeout."""
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env if env is not None else child_env(),
                            cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=5)
        rc = None
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.monotonic() - t0


class Server:
    """One `castmesh serve` process on free loopback ports.

    `env` entries override the defaults below (CASTMESH_<SECTION>__<KEY> = value).
    """

    def __init__(self, workdir, env=None, args=None):
        self.workdir = workdir
        self.http_port, self.rtmp_port = free_ports(2)
        self.env = {
            "CASTMESH_SERVER__HOST": HOST,
            "CASTMESH_SERVER__PORT": self.http_port,
            "CASTMESH_RTMP__HOST": HOST,
            "CASTMESH_RTMP__PORT": self.rtmp_port,
            "CASTMESH_HLS__TARGET_DURATION_SECS": 1,
            "CASTMESH_SERVER__SHUTDOWN_GRACE_SECS": SHUTDOWN_GRACE_SECS,
            "CASTMESH_SERVER__LOG_LEVEL": "info",
        }
        self.env.update(env or {})
        self.http_port = int(self.env["CASTMESH_SERVER__PORT"])
        self.rtmp_port = int(self.env["CASTMESH_RTMP__PORT"])
        self.grace = float(self.env["CASTMESH_SERVER__SHUTDOWN_GRACE_SECS"])
        self.args = list(args) if args else ["serve"]
        self.log_path = os.path.join(workdir, "castmesh.log")
        self.proc = None
        self._log = None

    # -- life cycle
    def start(self, ready_timeout=15.0):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([castmesh_bin()] + self.args, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env=child_env(self.env), cwd=self.workdir)
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("castmesh exited with %s before /readyz answered 200\n%s" % (
                    self.proc.returncode, self.log_tail()))
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = self.get("/readyz", timeout=1.0)
                if status == 200:
                    return
            time.sleep(0.05)
        raise AssertionError("castmesh did not answer /readyz 200 within %.0f s\n%s" % (
            timeout, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM by PID; returns (returncode, seconds to exit). A process still running after
        grace + slack is SIGKILLed and reported with returncode None."""
        if self.proc is None:
            return None, 0.0
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.grace + EXIT_SLACK_SECS)
            rc = self.proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        elapsed = time.monotonic() - t0
        self._close_log()
        return rc, elapsed

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self._close_log()

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- observation
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=200):
        text = self.log_text().splitlines()
        return "---- castmesh log (%s), last %d of %d lines ----\n%s\n---- end of log ----" % (
            self.log_path, min(lines, len(text)), len(text), "\n".join(text[-lines:]))

    def rss_kib(self):
        """Resident set size of the server, KiB (VmRSS of /proc/PID/status)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/%d/status" % self.proc.pid)

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    # -- HTTP
    def get(self, path, timeout=5.0, headers=None):
        """GET `path`; returns (status, {lower-case header: value}, body bytes)."""
        return http_get(self.http_port, path, timeout=timeout, headers=headers)

    def get_json(self, path, timeout=5.0):
        status, hdrs, body = self.get(path, timeout=timeout)
        if status != 200:
            raise AssertionError("GET %s -> %d %r" % (path, status, body[:300]))
        return json.loads(body.decode("utf-8"))

    def metrics(self):
        """Parses /metrics; returns {(name, labels-string): value}."""
        status, _, body = self.get("/metrics")
        if status != 200:
            raise AssertionError("GET /metrics -> %d" % status)
        return parse_metrics(body.decode("utf-8"))

    def metric_sum(self, name):
        """Sum of every sample of metric `name` (all label sets); 0 when absent."""
        return sum(v for (n, _), v in self.metrics().items() if n == name)

    def rtmp_url(self, app, stream):
        return "rtmp://%s:%d/%s/%s" % (HOST, self.rtmp_port, app, stream)

    def http_url(self, path):
        return "http://%s:%d%s" % (HOST, self.http_port, path)


def http_get(port, path, timeout=5.0, headers=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


_METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$')


def parse_metrics(text):
    """Prometheus text exposition -> {(name, labels): float}. Raises ValueError on a bad line."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line.strip())
        if not m:
            raise ValueError("bad metrics line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


# --------------------------------------------------------------------------------------------
# ffmpeg publisher and ffprobe

def publisher_args(url, extra_input=None, duration=None):
    args = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"]
    if duration is not None:
        args += ["-t", str(duration)]
    return args + ["-f", "flv", url]


class Publisher:
    """An ffmpeg process publishing a 1280x720 30 fps H.264 + AAC test stream over RTMP."""

    def __init__(self, url, log_path, procs, duration=None):
        self.url = url
        self.log_path = log_path
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = procs.add(subprocess.Popen(publisher_args(url, duration=duration),
                                                   stdin=subprocess.DEVNULL, stdout=log,
                                                   stderr=subprocess.STDOUT, env=child_env()))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM by PID (ffmpeg then closes the stream cleanly); returns rc."""
        return terminate(self.proc, timeout)

    def wait(self, timeout):
        """Waits up to `timeout` s for ffmpeg to exit by itself; returns rc or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def ffprobe_streams(url, timeout=30.0, extra=None):
    """Runs ffprobe on `url`; returns (list of stream dicts, stderr). Fails on a non-zero exit."""
    args = [FFPROBE, "-v", "error", "-show_streams", "-of", "json"] + (extra or []) + [url]
    rc, out, err, _ = run(args, timeout)
    if rc != 0:
        raise AssertionError("ffprobe %s exited %s: %s" % (url, rc, err.strip()[-2000:]))
    return json.loads(out).get("streams", []), err


# --------------------------------------------------------------------------------------------
# HLS

def playlist_segments(text):
    """URIs of the media segments of an HLS media playlist, in order."""
    return [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")]


# --------------------------------------------------------------------------------------------
# HTTP streaming response reader (HTTP-FLV)

class HttpStream:
    """A raw-socket HTTP/1.1 GET whose body is read incrementally (identity or chunked)."""

    def __init__(self, port, path, timeout=5.0, rcvbuf=None):
        self.t_start = time.monotonic()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: castmesh-itest\r\n\r\n" % (path, HOST, port)
        self.sock.sendall(req.encode("latin-1"))
        self._buf = bytearray()
        self._eof = False
        self.status = None
        self.headers = {}
        self._chunked = False
        self._chunk_left = 0
        self._body_left = None  # Content-Length, when given

    def _fill(self):
        if self._eof:
            return False
        data = self.sock.recv(65536)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def read_head(self):
        while b"\r\n\r\n" not in self._buf:
            if len(self._buf) > 65536:
                raise AssertionError("HTTP response head larger than 64 KiB")
            if not self._fill():
                raise EOFError("connection closed before the response head")
        head, _, rest = bytes(self._buf).partition(b"\r\n\r\n")
        self._buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1])
        for l in lines[1:]:
            k, _, v = l.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self._chunked and "content-length" in self.headers:
            self._body_left = int(self.headers["content-length"])
        return self.status

    def read_body(self, n=65536):
        """Up to `n` body bytes (b'' at the end of the body or of the connection)."""
        if self._chunked:
            while self._chunk_left == 0:
                while b"\r\n" not in self._buf:
                    if not self._fill():
                        return b""
                line, _, rest = bytes(self._buf).partition(b"\r\n")
                self._buf = bytearray(rest)
                if not line.strip():
                    continue  # CRLF after the previous chunk's data
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    return b""
                self._chunk_left = size
            if not self._buf and not self._fill():
                return b""
            take = min(n, self._chunk_left, len(self._buf))
            out = bytes(self._buf[:take])
            del self._buf[:take]
            self._chunk_left -= take
            return out
        if self._body_left == 0:
            return b""
        if not self._buf and not self._fill():
            return b""
        take = min(n, len(self._buf))
        if self._body_left is not None:
            take = min(take, self._body_left)
            self._body_left -= take
        out = bytes(self._buf[:take])
        del self._buf[:take]
        return out

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


class FlvTag:
    __slots__ = ("type", "timestamp", "data", "t_received")

    def __init__(self, type_, timestamp, data, t_received):
        self.type, self.timestamp, self.data, self.t_received = type_, timestamp, data, t_received

    @property
    def is_video(self):
        return self.type == 9

    @property
    def is_audio(self):
        return self.type == 8

    @property
    def is_avc_sequence_header(self):
        return self.type == 9 and len(self.data) >= 2 and (self.data[0] & 0x0F) == 7 and self.data[1] == 0

    @property
    def is_video_keyframe(self):
        """A coded (not sequence header) H.264 keyframe."""
        return (self.type == 9 and len(self.data) >= 2 and (self.data[0] >> 4) == 1
                and (self.data[0] & 0x0F) == 7 and self.data[1] == 1)

    @property
    def is_video_frame(self):
        return self.type == 9 and len(self.data) >= 2 and (self.data[0] & 0x0F) == 7 and self.data[1] == 1

    @property
    def is_aac_sequence_header(self):
        return self.type == 8 and len(self.data) >= 2 and (self.data[0] >> 4) == 10 and self.data[1] == 0


class FlvReader:
    """Parses an FLV byte stream (file header, then tags) from an HttpStream body."""

    def __init__(self, stream):
        self.stream = stream
        self._buf = bytearray()
        self.header = None
        self.bytes_read = 0

    def _need(self, n):
        while len(self._buf) < n:
            data = self.stream.read_body(max(65536, n - len(self._buf)))
            if not data:
                raise EOFError("FLV stream ended")
            self.bytes_read += len(data)
            self._buf += data

    def _take(self, n):
        self._need(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_header(self):
        hdr = self._take(9)
        if hdr[:3] != b"FLV":
            raise AssertionError("not an FLV stream: %r" % hdr)
        offset = struct.unpack(">I", hdr[5:9])[0]
        if offset > 9:
            self._take(offset - 9)
        self._take(4)  # PreviousTagSize0
        self.header = hdr
        return hdr

    def read_tag(self):
        h = self._take(11)
        type_ = h[0] & 0x1F
        size = int.from_bytes(h[1:4], "big")
        ts = int.from_bytes(h[4:7], "big") | (h[7] << 24)
        data = self._take(size)
        prev = struct.unpack(">I", self._take(4))[0]
        if prev != size + 11:
            raise AssertionError("FLV PreviousTagSize %d != %d" % (prev, size + 11))
        return FlvTag(type_, ts, data, time.monotonic())


def open_flv(port, app, stream, timeout=5.0, rcvbuf=None):
    """Opens GET /live/{app}/{stream}.flv; returns (HttpStream, FlvReader) after the head.
    The caller closes the stream."""
    s = HttpStream(port, "/live/%s/%s.flv" % (app, stream), timeout=timeout, rcvbuf=rcvbuf)
    try:
        status = s.read_head()
        if status != 200:
            raise AssertionError("GET /live/%s/%s.flv -> %d" % (app, stream, status))
        r = FlvReader(s)
        r.read_header()
        return s, r
    except BaseException:
        s.close()
        raise


def flv_time_to_keyframe(port, app, stream, timeout=5.0):
    """Seconds from connecting to the end of the first coded H.264 keyframe of an HTTP-FLV play,
    plus the tags received up to it."""
    s = HttpStream(port, "/live/%s/%s.flv" % (app, stream), timeout=timeout)
    try:
        deadline = s.t_start + timeout
        status = s.read_head()
        if status != 200:
            raise AssertionError("GET /live/%s/%s.flv -> %d" % (app, stream, status))
        r = FlvReader(s)
        r.read_header()
        tags = []
        while time.monotonic() < deadline:
            t = r.read_tag()
            tags.append(t)
            if t.is_video_keyframe:
                return t.t_received - s.t_start, tags
        raise AssertionError("no video keyframe within %.1f s" % timeout)
    finally:
        s.close()


class BackgroundDrain(threading.Thread):
    """Reads and discards from a callable `read_once` in a thread until stop()."""

    def __init__(self, read_once):
        super().__init__(daemon=True)
        self.read_once = read_once
        self._stop_evt = threading.Event()
        self.error = None
        self.count = 0

    def run(self):
        try:
            while not self._stop_evt.is_set():
                n = self.read_once()
                if n is None:
                    return
                self.count += n
        except (OSError, EOFError) as e:
            if not self._stop_evt.is_set():
                self.error = e

    def stop(self):
        self._stop_evt.set()
        self.join(timeout=10)


# --------------------------------------------------------------------------------------------
# AMF0 (enough for RTMP commands)

class Undefined:
    pass


UNDEFINED = Undefined()


class EcmaArray(dict):
    pass


def amf0_encode(v, out=None):
    out = bytearray() if out is None else out
    if v is None:
        out.append(0x05)
    elif v is UNDEFINED:
        out.append(0x06)
    elif isinstance(v, bool):
        out += bytes([0x01, 1 if v else 0])
    elif isinstance(v, (int, float)):
        out.append(0x00)
        out += struct.pack(">d", float(v))
    elif isinstance(v, str):
        b = v.encode("utf-8")
        if len(b) > 0xFFFF:
            out.append(0x0C)
            out += struct.pack(">I", len(b)) + b
        else:
            out.append(0x02)
            out += struct.pack(">H", len(b)) + b
    elif isinstance(v, dict):
        out.append(0x08 if isinstance(v, EcmaArray) else 0x03)
        if isinstance(v, EcmaArray):
            out += struct.pack(">I", len(v))
        for k, val in v.items():
            kb = k.encode("utf-8")
            out += struct.pack(">H", len(kb)) + kb
            amf0_encode(val, out)
        out += b"\x00\x00\x09"
    elif isinstance(v, (list, tuple)):
        out.append(0x0A)
        out += struct.pack(">I", len(v))
        for x in v:
            amf0_encode(x, out)
    else:
        raise TypeError("cannot AMF0-encode %r" % (v,))
    return out


class AmfError(ValueError):
    pass


def amf0_decode_all(data):
    vals, pos = [], 0
    while pos < len(data):
        v, pos = _amf0_decode(data, pos, 0)
        vals.append(v)
    return vals


def _need(data, pos, n):
    if pos + n > len(data):
        raise AmfError("truncated AMF0 at %d" % pos)


def _amf0_decode(data, pos, depth):
    if depth > 32:
        raise AmfError("AMF0 too deep")
    _need(data, pos, 1)
    m = data[pos]
    pos += 1
    if m == 0x00:
        _need(data, pos, 8)
        return struct.unpack(">d", data[pos:pos + 8])[0], pos + 8
    if m == 0x01:
        _need(data, pos, 1)
        return data[pos] != 0, pos + 1
    if m in (0x02, 0x0C):
        w = 2 if m == 0x02 else 4
        _need(data, pos, w)
        n = int.from_bytes(data[pos:pos + w], "big")
        pos += w
        _need(data, pos, n)
        return data[pos:pos + n].decode("utf-8", "replace"), pos + n
    if m in (0x03, 0x08):
        if m == 0x08:
            _need(data, pos, 4)
            pos += 4
        obj = {}
        while True:
            _need(data, pos, 3)
            n = int.from_bytes(data[pos:pos + 2], "big")
            if n == 0 and data[pos + 2] == 0x09:
                return obj, pos + 3
            pos += 2
            _need(data, pos, n)
            key = data[pos:pos + n].decode("utf-8", "replace")
            pos += n
            obj[key], pos = _amf0_decode(data, pos, depth + 1)
    if m == 0x05:
        return None, pos
    if m == 0x06:
        return UNDEFINED, pos
    if m == 0x0A:
        _need(data, pos, 4)
        n = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        items = []
        for _ in range(n):
            v, pos = _amf0_decode(data, pos, depth + 1)
            items.append(v)
        return items, pos
    if m == 0x0B:
        _need(data, pos, 10)
        return struct.unpack(">d", data[pos:pos + 8])[0], pos + 10
    raise AmfError("unsupported AMF0 marker 0x%02x" % m)


# --------------------------------------------------------------------------------------------
# RTMP client (RTMP spec 5.2 simple handshake, 5.3 chunking, 7.2 commands)

class RtmpClosed(EOFError):
    pass


class RtmpMessage:
    __slots__ = ("type_id", "stream_id", "timestamp", "payload", "t_received")

    def __init__(self, type_id, stream_id, timestamp, payload):
        self.type_id, self.stream_id, self.timestamp, self.payload = type_id, stream_id, timestamp, payload
        self.t_received = time.monotonic()

    def command(self):
        """Decoded AMF0 values of a command/data message (types 20, 17, 18, 15), else None."""
        if self.type_id in (20, 18):
            return amf0_decode_all(self.payload)
        if self.type_id in (17, 15):
            return amf0_decode_all(self.payload[1:])
        return None

    @property
    def is_video_keyframe(self):
        p = self.payload
        return self.type_id == 9 and len(p) >= 2 and (p[0] >> 4) == 1 and (p[0] & 0x0F) == 7 and p[1] == 1


def chunk_basic_header(fmt, csid):
    if 2 <= csid <= 63:
        return bytes([(fmt << 6) | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    c = csid - 64
    return bytes([(fmt << 6) | 1, c & 0xFF, c >> 8])


def encode_chunks(csid, type_id, stream_id, payload, timestamp=0, chunk_size=128, length=None):
    """One message as chunks: a type-0 chunk then type-3 continuations. `length` overrides the
    message length field (to send a lying header)."""
    out = bytearray(chunk_basic_header(0, csid))
    ext = timestamp >= 0xFFFFFF
    out += min(timestamp, 0xFFFFFF).to_bytes(3, "big")
    out += (len(payload) if length is None else length).to_bytes(3, "big")
    out.append(type_id)
    out += struct.pack("<I", stream_id)
    if ext:
        out += struct.pack(">I", timestamp)
    for i in range(0, max(len(payload), 1), chunk_size):
        if i > 0:
            out += chunk_basic_header(3, csid)
            if ext:
                out += struct.pack(">I", timestamp)
        out += payload[i:i + chunk_size]
    return bytes(out)


class _ChunkStreamState:
    __slots__ = ("timestamp", "delta", "length", "type_id", "stream_id", "ext", "partial")

    def __init__(self):
        self.timestamp = self.delta = self.length = self.type_id = self.stream_id = 0
        self.ext = False
        self.partial = None


class RtmpClient:
    """A minimal blocking RTMP client: handshake, connect, createStream, play/publish, and a chunk
    reader that answers acknowledgements and pings. Every read is bounded by `timeout`."""

    def __init__(self, port, timeout=5.0, host=HOST):
        self.t_start = time.monotonic()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.port = port
        self.host = host
        self._buf = bytearray()
        self.in_chunk_size = 128
        self.out_chunk_size = 128
        self.window = 0
        self.received = 0
        self.last_ack = 0
        self.streams = {}
        self.tx = 0
        self.messages = []  # every message read, when keep=True in read_message

    # -- raw I/O
    def send(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        while len(self._buf) < n:
            try:
                data = self.sock.recv(max(65536, n - len(self._buf)))
            except ConnectionResetError as e:
                raise RtmpClosed("connection reset by server") from e
            if not data:
                raise RtmpClosed("connection closed by server")
            self._buf += data
            self.received += len(data)
            if self.window and self.received - self.last_ack >= self.window:
                self.last_ack = self.received
                self.send(encode_chunks(2, 3, 0, struct.pack(">I", self.received & 0xFFFFFFFF)))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- handshake
    def handshake(self, version=3):
        c1 = struct.pack(">II", int(time.time()) & 0xFFFFFFFF, 0) + os.urandom(1528)
        self.send(bytes([version]) + c1)
        s0 = self._recv_exact(1)
        if s0[0] != 3:
            raise AssertionError("S0 version %d" % s0[0])
        s1 = self._recv_exact(1536)
        self._recv_exact(1536)  # S2
        self.send(s1)  # C2 echoes S1
        return s1

    # -- messages
    def send_message(self, csid, type_id, stream_id, payload, timestamp=0):
        self.send(encode_chunks(csid, type_id, stream_id, payload, timestamp, self.out_chunk_size))

    def set_chunk_size(self, n):
        self.send(encode_chunks(2, 1, 0, struct.pack(">I", n)))
        self.out_chunk_size = n

    def send_command(self, name, *args, stream_id=0, csid=3):
        self.tx += 1
        payload = bytearray()
        amf0_encode(name, payload)
        amf0_encode(self.tx if name not in ("play", "publish", "deleteStream") else 0, payload)
        for a in args:
            amf0_encode(a, payload)
        self.send_message(csid, 20, stream_id, bytes(payload))
        return self.tx

    def read_message(self):
        """Reads chunks until one whole message is complete; handles protocol control."""
        while True:
            b0 = self._recv_exact(1)[0]
            fmt, csid = b0 >> 6, b0 & 0x3F
            if csid == 0:
                csid = 64 + self._recv_exact(1)[0]
            elif csid == 1:
                b = self._recv_exact(2)
                csid = 64 + b[0] + 256 * b[1]
            st = self.streams.get(csid)
            if st is None:
                if fmt != 0:
                    raise AssertionError("server sent fmt %d chunk on new csid %d" % (fmt, csid))
                st = self.streams[csid] = _ChunkStreamState()
            new_message = st.partial is None
            if fmt == 0:
                h = self._recv_exact(11)
                tsf = int.from_bytes(h[0:3], "big")
                st.length = int.from_bytes(h[3:6], "big")
                st.type_id = h[6]
                st.stream_id = struct.unpack("<I", h[7:11])[0]
                st.ext = tsf == 0xFFFFFF
                if st.ext:
                    tsf = struct.unpack(">I", self._recv_exact(4))[0]
                st.timestamp, st.delta = tsf, 0
            elif fmt in (1, 2):
                h = self._recv_exact(7 if fmt == 1 else 3)
                tsf = int.from_bytes(h[0:3], "big")
                if fmt == 1:
                    st.length = int.from_bytes(h[3:6], "big")
                    st.type_id = h[6]
                st.ext = tsf == 0xFFFFFF
                if st.ext:
                    tsf = struct.unpack(">I", self._recv_exact(4))[0]
                st.delta = tsf
                st.timestamp = (st.timestamp + tsf) & 0xFFFFFFFF
            else:
                if st.ext:
                    self._recv_exact(4)
                if new_message:
                    st.timestamp = (st.timestamp + st.delta) & 0xFFFFFFFF
            if new_message:
                st.partial = bytearray()
            take = min(self.in_chunk_size, st.length - len(st.partial))
            st.partial += self._recv_exact(take)
            if len(st.partial) < st.length:
                continue
            msg = RtmpMessage(st.type_id, st.stream_id, st.timestamp, bytes(st.partial))
            st.partial = None
            self._on_control(msg)
            return msg

    def _on_control(self, msg):
        p = msg.payload
        if msg.type_id == 1 and len(p) >= 4:
            self.in_chunk_size = struct.unpack(">I", p[:4])[0] & 0x7FFFFFFF
            if self.in_chunk_size == 0:
                raise AssertionError("server sent Set Chunk Size 0")
        elif msg.type_id == 5 and len(p) >= 4:
            self.window = struct.unpack(">I", p[:4])[0]
        elif msg.type_id == 4 and len(p) >= 6 and struct.unpack(">H", p[:2])[0] == 6:
            self.send(encode_chunks(2, 4, 0, struct.pack(">H", 7) + p[2:6]))

    def read_until(self, predicate, timeout):
        """Reads messages until predicate(msg) is truthy; returns (msg, value). Bounded."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("RTMP: timed out after %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                msg = self.read_message()
            except socket.timeout:
                raise AssertionError("RTMP: timed out after %.1f s" % timeout)
            value = predicate(msg)
            if value:
                return msg, value

    def wait_command(self, names, timeout=5.0):
        """Reads until a command whose name is in `names`; returns its decoded values."""
        def pred(m):
            c = m.command()
            if c and isinstance(c[0], str) and c[0] in names:
                return c
            return None
        return self.read_until(pred, timeout)[1]

    # -- high level
    def connect(self, app, timeout=5.0, tc_url=None):
        self.tx = 0
        self.send_command("connect", {
            "app": app, "flashVer": "LNX 9,0,124,2", "type": "nonprivate",
            "tcUrl": tc_url or "rtmp://%s:%d/%s" % (self.host, self.port, app),
            "fpad": False, "capabilities": 15.0, "audioCodecs": 3191.0, "videoCodecs": 252.0,
            "videoFunction": 1.0, "objectEncoding": 0.0})
        res = self.wait_command(("_result", "_error"), timeout)
        if res[0] != "_result":
            raise AssertionError("connect refused: %r" % (res,))
        return res

    def create_stream(self, timeout=5.0):
        tx = self.send_command("createStream", None)
        res = self.wait_command(("_result", "_error"), timeout)
        if res[0] != "_result" or len(res) < 4 or int(res[1]) != tx:
            raise AssertionError("createStream failed: %r" % (res,))
        return int(res[3])

    def play(self, stream_id, name):
        self.send(encode_chunks(2, 4, 0, struct.pack(">HII", 3, stream_id, 1000)))  # buffer length
        self.send_command("play", None, name, stream_id=stream_id, csid=8)

    def publish(self, stream_id, name):
        self.send_command("publish", None, name, "live", stream_id=stream_id, csid=8)

    def wait_status(self, timeout=5.0):
        """The info object of the next onStatus (or the values of an _error)."""
        c = self.wait_command(("onStatus", "_error"), timeout)
        if c[0] == "_error":
            return {"level": "error", "code": "_error", "values": c}
        info = c[3] if len(c) > 3 and isinstance(c[3], dict) else {}
        return info

    def first_keyframe(self, timeout=5.0):
        msg, _ = self.read_until(lambda m: m.is_video_keyframe, timeout)
        return msg


def rtmp_play(port, app, stream, timeout=5.0):
    """Handshake + connect + createStream + play; returns the client (caller closes)."""
    c = RtmpClient(port, timeout=timeout)
    try:
        c.handshake()
        c.set_chunk_size(4096)
        c.connect(app, timeout)
        sid = c.create_stream(timeout)
        c.play(sid, stream)
        return c
    except BaseException:
        c.close()
        raise


def rtmp_time_to_keyframe(port, app, stream, timeout=5.0):
    """Seconds from TCP connect to the first coded H.264 keyframe of an RTMP play."""
    c = rtmp_play(port, app, stream, timeout)
    try:
        msg = c.first_keyframe(timeout)
        return msg.t_received - c.t_start
    finally:
        c.close()


def wait_closed(sock, timeout):
    """True when the peer closes `sock` (EOF or reset) within `timeout` s; bytes received are
    discarded."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not data:
            return True


# --------------------------------------------------------------------------------------------
# API JSON helpers

def find_stream(doc, app, stream):
    """The object describing app/stream in a GET /api/v1/streams answer, or None."""
    items = doc
    if isinstance(doc, dict):
        for k in ("streams", "data", "items"):
            if isinstance(doc.get(k), list):
                items = doc[k]
                break
    if not isinstance(items, list):
        return None
    for s in items:
        if not isinstance(s, dict):
            continue
        if s.get("app") == app and s.get("stream") == stream:
            return s
        if s.get("key") == "%s/%s" % (app, stream):
            return s
        if s.get("app") == app and s.get("name") == stream:
            return s
    return None


def dig(obj, *paths):
    """First value found at one of `paths` (each "a.b.c"); raises KeyError naming them all."""
    for p in paths:
        cur = obj
        ok = True
        for part in p.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok:
            return cur
    raise KeyError("none of %s in %s" % (", ".join(paths), json.dumps(obj)[:1500]))


def subscribers(obj, proto):
    names = {"httpflv": ("httpflv", "http_flv", "flv"), "rtmp": ("rtmp",), "hls": ("hls",)}[proto]
    return int(dig(obj, *(["subscribers." + n for n in names] +
                          ["subscribers_" + n for n in names] +
                          ["clients." + n for n in names])))


# --------------------------------------------------------------------------------------------
# Test case base

class ServerTestCase(unittest.TestCase):
    """One server per test class (started in setUpClass with `server_env`); per-test processes in
    `self.procs`, killed by PID in tearDown. On a failure the server log is printed."""

    server_env = {}
    server = None

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="castmesh-itest-")
        cls.class_procs = ProcessSet()
        cls.any_failure = False
        cls.server = Server(cls.workdir, cls.server_env)
        try:
            cls.server.start()
            cls.setUpServer()
        except BaseException:
            sys.stderr.write(cls.server.log_tail() + "\n")
            cls.class_procs.kill_all()
            cls.server.kill()
            raise

    @classmethod
    def setUpServer(cls):
        """Hook: publishers etc. started once per class (add processes to cls.class_procs)."""

    @classmethod
    def tearDownClass(cls):
        cls.class_procs.kill_all()
        rc, elapsed = cls.server.stop()
        if cls.any_failure or rc != 0:
            sys.stderr.write(cls.server.log_tail() + "\n")
        cls.server.kill()
        if not cls.any_failure and rc == 0:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        else:
            sys.stderr.write("kept work directory %s\n" % cls.workdir)
        if rc != 0:
            raise AssertionError("castmesh exited with %s (%.1f s after SIGTERM), expected 0 within "
                                 "%.1f s" % (rc, elapsed, cls.server.grace))

    def setUp(self):
        self.procs = ProcessSet()
        self._closers = []

    def closing(self, obj):
        """Closes `obj` (anything with close()) in tearDown."""
        self._closers.append(obj)
        return obj

    def tearDown(self):
        for c in reversed(self._closers):
            with contextlib.suppress(Exception):
                c.close()
        self.procs.kill_all()
        if self._failed():
            type(self).any_failure = True
            sys.stderr.write("\n%s failed; server log follows\n%s\n" % (self.id(), self.server.log_tail(120)))

    def _failed(self):
        """True when this test (or one of its subtests) has failed so far. (tearDown runs in a
        fresh outcome part, so the result lists are what tell.)"""
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        for t, _ in list(result.failures) + list(result.errors):
            if t is self or getattr(t, "test_case", None) is self:
                return True
        return False

    def start_publisher(self, app, stream, procs=None, duration=None):
        procs = procs or self.procs
        path = os.path.join(self.workdir, "ffmpeg-%s-%s-%d.log" % (app, stream, int(time.time() * 1000)))
        return Publisher(self.server.rtmp_url(app, stream), path, procs, duration)

    @classmethod
    def start_class_publisher(cls, app, stream):
        path = os.path.join(cls.workdir, "ffmpeg-%s-%s-class.log" % (app, stream))
        return Publisher(cls.server.rtmp_url(app, stream), path, cls.class_procs)

    @classmethod
    def wait_stream_live(cls, app, stream, segments=2, timeout=20.0):
        """Waits until the HLS playlist of app/stream lists at least `segments` segments."""
        def ready():
            status, _, body = cls.server.get("/live/%s/%s.m3u8" % (app, stream))
            return status == 200 and len(playlist_segments(body.decode())) >= segments
        wait_for(ready, timeout, 0.2, "HLS playlist of %s/%s with %d segments" % (app, stream, segments))
