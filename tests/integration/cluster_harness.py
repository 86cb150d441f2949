"""Helpers for the cluster-mode integration tests (Python 3 standard library only).

- RedisServer: a throwaway `redis-server` (no persistence) on a free loopback port, started and
  stopped by PID, restartable on the same port; `cmd()` speaks RESP for inspection.
- DnsServer: `dnsmasq` on a free loopback UDP port answering A records from an addn-hosts file
  (one name -> several 127.0.0.x), for cluster.discovery_mode k8s_dns.
- ClusterNode: a harness.Server with cluster mode on (redis.url, a postgres:// database.url, a
  cluster secret, cluster.listen / advertise_addr on a free loopback port, short heartbeat and
  lease), plus readers of GET /api/v1/cluster/nodes and a signer for the inter-node API.
- sign() / internode_request(): the inter-node request signature (docs/design.md "Cluster mode"):
  hex(HMAC-SHA256(secret, METHOD\\nTARGET\\nhex(sha256(body))\\nTIMESTAMP\\nNONCE)).

Every process is started here with its PID kept and is stopped by that PID; every wait is bounded.
"""

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import HOST, Server, wait_for

REDIS_SERVER = os.environ.get("REDIS_SERVER", shutil.which("redis-server") or "/usr/bin/redis-server")
DNSMASQ = os.environ.get("DNSMASQ", "/usr/sbin/dnsmasq")
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# Defaults of the cluster nodes started here (seconds).
HEARTBEAT_SECS = 0.5
LEASE_SECS = 3


# --------------------------------------------------------------------------------------------
# Ports

def free_udp_port(host=HOST):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_port_on_all(hosts):
    """A TCP port that was free a moment ago on every address of `hosts` (e.g. 127.0.0.11-13)."""
    for _ in range(50):
        port = harness.free_ports(1)[0]
        socks = []
        try:
            for h in hosts:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no TCP port free on all of %s" % (hosts,))


# --------------------------------------------------------------------------------------------
# PostgreSQL (the `postgres` CTest fixture, scripts/pg-test)

def postgres_url():
    """The URL of the test PostgreSQL: $CASTMESH_TEST_PG_URL, else `scripts/pg-test url
    $CASTMESH_PG_TEST_KEY`; None when neither is set."""
    url = os.environ.get("CASTMESH_TEST_PG_URL")
    if url:
        return url
    key = os.environ.get("CASTMESH_PG_TEST_KEY")
    if not key:
        return None
    rc, out, err, _ = harness.run([os.path.join(REPO, "scripts", "pg-test"), "url", key], 30)
    if rc != 0:
        raise AssertionError("scripts/pg-test url %s failed: %s" % (key, err))
    return out.strip()


HAVE_POSTGRES = bool(os.environ.get("CASTMESH_TEST_PG_URL") or os.environ.get("CASTMESH_PG_TEST_KEY"))
SKIP_NO_POSTGRES = "no PostgreSQL instance (set CASTMESH_PG_TEST_KEY or CASTMESH_TEST_PG_URL)"


# --------------------------------------------------------------------------------------------
# Redis

class RedisError(Exception):
    pass


def _resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode("utf-8")
        elif not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _RespReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisError("bad RESP reply %r" % line[:80])


def redis_cmd(port, *args, timeout=3.0):
    """Runs one command on the redis-server at 127.0.0.1:`port`; returns the decoded reply
    (bytes for bulk strings). Raises RedisError for an error reply, OSError when down."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(_resp_encode(args))
        reply = _RespReader(s).read()
    if isinstance(reply, RedisError):
        raise reply
    return reply


class RedisServer:
    """redis-server --bind 127.0.0.1 --port P --save '' --appendonly no, in `workdir`."""

    def __init__(self, workdir, port=None):
        self.workdir = workdir
        self.port = port or harness.free_ports(1)[0]
        self.proc = None
        self.log_path = os.path.join(workdir, "redis-%d.log" % self.port)

    @property
    def url(self):
        return "redis://%s:%d" % (HOST, self.port)

    def start(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--bind", HOST, "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", self.workdir,
                 "--logfile", self.log_path],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=harness.child_env())
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(OSError, EOFError, RedisError):
                    if redis_cmd(self.port, "PING", timeout=0.5) == "PONG":
                        return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("redis-server on port %d did not answer PING" % self.port)
            # Exited (port taken for a moment, e.g. TIME_WAIT after a restart): retry until the deadline.
            if time.monotonic() >= deadline:
                raise AssertionError("redis-server on port %d exited with %s:\n%s" % (
                    self.port, self.proc.returncode, self.log_tail()))
            time.sleep(0.2)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Stops the server by PID (SIGTERM, SIGKILL after 5 s)."""
        if self.proc is not None:
            harness.terminate(self.proc, 5.0, sig)

    def kill(self):
        self.stop(signal.SIGKILL)

    def pause(self):
        """SIGSTOP by PID: the server hangs with its connections open."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self):
        """Stops and starts again on the same port (an empty data set: no persistence)."""
        self.stop()
        return self.start()

    def cmd(self, *args):
        return redis_cmd(self.port, *args)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""


# --------------------------------------------------------------------------------------------
# DNS

class DnsServer:
    """dnsmasq on 127.0.0.1:<free UDP port> answering `name` with every address of `addrs`
    (A records from an addn-hosts file); no upstream, no /etc/hosts."""

    def __init__(self, workdir, name, addrs):
        self.workdir = workdir
        self.name = name
        self.addrs = list(addrs)
        self.port = free_udp_port()
        self.hosts_path = os.path.join(workdir, "dns-hosts")
        self.log_path = os.path.join(workdir, "dnsmasq.log")
        self.proc = None

    @property
    def addr(self):
        return "%s:%d" % (HOST, self.port)

    def start(self, timeout=10.0):
        with open(self.hosts_path, "w") as f:
            for a in self.addrs:
                f.write("%s %s\n" % (a, self.name))
        user = pwd.getpwuid(os.getuid()).pw_name
        self.proc = subprocess.Popen(
            [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             "--addn-hosts=" + self.hosts_path, "--listen-address=" + HOST, "--bind-interfaces",
             "--port=%d" % self.port, "--user=" + user,
             "--pid-file=" + os.path.join(self.workdir, "dnsmasq.pid"),
             "--log-facility=" + self.log_path, "--log-queries"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=harness.child_env())
        wait_for(lambda: self._check(), timeout, 0.1, "dnsmasq answering %s" % self.name)
        return self

    def _check(self):
        if self.proc.poll() is not None:
            raise AssertionError("dnsmasq exited %s: %s" % (
                self.proc.returncode, self.proc.stderr.read().decode("utf-8", "replace")))
        return sorted(self.query_a(self.name)) == sorted(self.addrs)

    def query_a(self, name, timeout=1.0):
        """The A records the server gives for `name` (a list of dotted quads)."""
        return dns_query_a(HOST, self.port, name, timeout)

    def stop(self):
        if self.proc is not None:
            harness.terminate(self.proc, 5.0)
            with contextlib.suppress(Exception):
                self.proc.stderr.close()


def dns_query_a(server, port, name, timeout=1.0):
    qid = secrets.randbits(16)
    q = bytes([qid >> 8, qid & 0xFF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        r = s.recv(4096)
    if len(r) < 12 or r[0] != q[0] or r[1] != q[1]:
        raise ValueError("bad DNS reply")
    an = (r[6] << 8) | r[7]
    pos = len(q)  # dnsmasq echoes the question
    out = []
    for _ in range(an):
        # Name: a pointer (2 bytes) or labels.
        while True:
            b = r[pos]
            if b & 0xC0 == 0xC0:
                pos += 2
                break
            pos += 1 + b
            if b == 0:
                break
        rtype = (r[pos] << 8) | r[pos + 1]
        rdlen = (r[pos + 8] << 8) | r[pos + 9]
        pos += 10
        if rtype == 1 and rdlen == 4:
            out.append(".".join(str(x) for x in r[pos:pos + 4]))
        pos += rdlen
    return out


# --------------------------------------------------------------------------------------------
# Inter-node signing

def sign(secret, method, target, body, ts_ms, nonce):
    """hex(HMAC-SHA256(secret, METHOD\\nTARGET\\nhex(sha256(body))\\nTIMESTAMP\\nNONCE))."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    msg = "%s\n%s\n%s\n%d\n%s" % (method, target, hashlib.sha256(body or b"").hexdigest(), ts_ms, nonce)
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).hexdigest()


def signed_headers(secret, node_id, method, target, body=b"", ts_ms=None, nonce=None):
    ts_ms = int(time.time() * 1000) if ts_ms is None else int(ts_ms)
    nonce = nonce or secrets.token_hex(16)
    return {
        "X-Castmesh-Node": node_id,
        "X-Castmesh-Timestamp": str(ts_ms),
        "X-Castmesh-Nonce": nonce,
        "X-Castmesh-Signature": sign(secret, method, target, body, ts_ms, nonce),
    }


def http_request(host, port, method, target, body=b"", headers=None, timeout=5.0):
    """One HTTP/1.1 request; returns (status, {lower header: value}, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if body:
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, target, body=body if body else None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Cluster nodes

def new_secret():
    return "cm-secret-" + secrets.token_hex(16)


class ClusterNode(Server):
    """One `castmesh serve` in cluster mode (see the module docstring). `extra_env` overrides
    the cluster defaults (CASTMESH_<SECTION>__<KEY>)."""

    def __init__(self, workdir, node_id, redis_url, database_url, secret, key_prefix,
                 listen_host=HOST, listen_port=None, heartbeat=HEARTBEAT_SECS, lease=LEASE_SECS,
                 extra_env=None):
        os.makedirs(workdir, exist_ok=True)
        self.node_id = node_id
        self.secret = secret
        self.listen_host = listen_host
        self.listen_port = listen_port or free_port_on_all([listen_host])
        self.heartbeat = heartbeat
        self.lease = lease
        env = {
            "CASTMESH_CLUSTER__ENABLED": "true",
            "CASTMESH_CLUSTER__NODE_ID": node_id,
            "CASTMESH_CLUSTER__LISTEN": self.internode_addr,
            "CASTMESH_CLUSTER__ADVERTISE_ADDR": self.internode_addr,
            "CASTMESH_CLUSTER__HEARTBEAT_INTERVAL": heartbeat,
            "CASTMESH_CLUSTER__LEADER_LEASE_SECS": lease,
            "CASTMESH_REDIS__URL": redis_url,
            "CASTMESH_REDIS__KEY_PREFIX": key_prefix,
            "CASTMESH_DATABASE__URL": database_url,
            "CASTMESH_ROOMS__WS_RATE_PER_SEC": 10000,
            "CASTMESH_ROOMS__WS_SEND_QUEUE": 20000,
            "CASTMESH_ROOMS__KICK_COOLDOWN_SECS": 60,
            "CASTMESH_ROOMS__CHAT_HISTORY": 5000,
        }
        if secret is not None:
            env["CASTMESH_SERVER__CLUSTER_SECRET"] = secret
        env.update(extra_env or {})
        super().__init__(workdir, env)

    @property
    def internode_addr(self):
        return "%s:%d" % (self.listen_host, self.listen_port)

    # -- public cluster view
    def cluster(self, timeout=2.0):
        """GET /api/v1/cluster/nodes as a dict."""
        return self.get_json("/api/v1/cluster/nodes", timeout=timeout)

    def node_states(self, timeout=2.0):
        """{node_id: state} of this node's view."""
        return {n["node_id"]: n["state"] for n in self.cluster(timeout)["nodes"]}

    # -- inter-node API
    def internode(self, method, target, body=b"", headers=None, timeout=5.0):
        return http_request(self.listen_host, self.listen_port, method, target, body, headers, timeout)

    def signed(self, method, target, body=b"", secret=None, node_id="", ts_ms=None, nonce=None,
               drop=(), timeout=5.0):
        """A signed request to this node's inter-node API as node `node_id`; headers in `drop`
        are left out. Returns (status, headers, body bytes, the headers sent)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        hdrs = signed_headers(self.secret if secret is None else secret, node_id, method, target,
                              body, ts_ms, nonce)
        for h in drop:
            hdrs.pop(h, None)
        st, rh, data = self.internode(method, target, body, hdrs, timeout)
        return st, rh, data, hdrs


class Cluster:
    """A set of ClusterNodes sharing one Redis, one PostgreSQL and one secret."""

    def __init__(self, workdir, redis, database_url, key_prefix, secret=None, **node_kw):
        self.workdir = workdir
        self.redis = redis
        self.database_url = database_url
        self.key_prefix = key_prefix
        self.secret = secret or new_secret()
        self.node_kw = node_kw
        self.nodes = []

    def add(self, node_id, start=True, **kw):
        args = dict(self.node_kw)
        args.update(kw)
        prefix = args.pop("key_prefix", self.key_prefix)
        node = ClusterNode(os.path.join(self.workdir, node_id), node_id, self.redis.url,
                           self.database_url, self.secret, prefix, **args)
        self.nodes.append(node)
        if start:
            node.start(ready_timeout=30)
        return node

    def alive_nodes(self):
        return [n for n in self.nodes if n.alive()]

    def wait_all_alive(self, nodes=None, timeout=15.0):
        """Waits until each of `nodes` (default: the running ones) lists every one of them
        as alive; returns {node_id: cluster doc}."""
        nodes = nodes or self.alive_nodes()
        want = {n.node_id for n in nodes}
        docs = {}

        def ok():
            for n in nodes:
                doc = n.cluster()
                alive = {x["node_id"] for x in doc["nodes"] if x["state"] == "alive"}
                if not want <= alive:
                    return False
                docs[n.node_id] = doc
            return True
        wait_for(ok, timeout, 0.1, "nodes %s all alive in each other's view" % sorted(want))
        return docs

    def leaders(self, nodes=None):
        """[(node_id, leader_epoch)] of the nodes that report is_leader."""
        out = []
        for n in nodes or self.alive_nodes():
            doc = n.cluster()
            if doc.get("is_leader"):
                out.append((n.node_id, doc.get("leader_epoch")))
        return out

    def stop_all(self):
        """SIGTERM by PID (SIGKILL after the grace); returns {node_id: returncode}."""
        out = {}
        for n in self.nodes:
            if n.proc is not None:
                out[n.node_id] = n.stop()[0]
            n.kill()
        return out

    def kill_all(self):
        for n in self.nodes:
            n.kill()

    def logs(self, lines=80):
        return "\n".join(n.log_tail(lines) for n in self.nodes)


class Sampler(threading.Thread):
    """Polls GET /api/v1/cluster/nodes of each node every `period` s in a background thread;
    `rounds` is a list of (monotonic time, {node_id: doc or None})."""

    def __init__(self, nodes, period=0.05):
        super().__init__(daemon=True)
        self.nodes = list(nodes)
        self.period = period
        self.rounds = []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            r = {}
            for n in self.nodes:
                if not n.alive():
                    continue
                try:
                    r[n.node_id] = n.cluster(timeout=0.5)
                except (OSError, ValueError, AssertionError, http.client.HTTPException):
                    r[n.node_id] = None
            self.rounds.append((t, r))
            left = self.period - (time.monotonic() - t)
            if left > 0:
                self._halt.wait(left)

    def stop(self):
        self._halt.set()
        self.join(5)

    def first(self, pred, after=0.0):
        """The first round time >= `after` where pred(round dict) holds; None if never."""
        for t, r in list(self.rounds):
            if t >= after and pred(r):
                return t
        return None


def uniq(prefix):
    return "%s%d%s" % (prefix, os.getpid() % 10000, secrets.token_hex(3))


def make_workdir(prefix):
    return tempfile.mkdtemp(prefix="castmesh-ctest-%s-" % prefix)


def dump_failure(stream, *servers):
    for s in servers:
        with contextlib.suppress(Exception):
            stream.write(s.log_tail(150) + "\n")


# --------------------------------------------------------------------------------------------
# Room WebSocket members read in background threads

class Collector(threading.Thread):
    """Reads every message of one WsClient in a background thread: `msgs` is a list of
    (monotonic receive time, message dict); `close_code` is set when the server closes
    (None until then; `closed` tells). Use send() from one other thread at a time."""

    def __init__(self, ws, name):
        super().__init__(daemon=True, name="ws-" + name)
        self.ws = ws
        self.label = name
        self.msgs = []
        self.cond = threading.Condition()
        self.closed = False
        self.close_code = None
        self.error = None
        self._halt = threading.Event()
        # The reader answers pings and closes; one lock keeps frames from interleaving.
        lock, send_frame = threading.Lock(), ws.send_frame

        def locked_send_frame(*a, **kw):
            with lock:
                return send_frame(*a, **kw)
        ws.send_frame = locked_send_frame

    def run(self):
        from wsclient import Closed
        while not self._halt.is_set():
            try:
                m = self.ws.recv_json(0.5)
            except (socket.timeout, TimeoutError):
                continue
            except Closed as c:
                with self.cond:
                    self.closed, self.close_code = True, c.code
                    self.cond.notify_all()
                return
            except Exception as e:  # noqa: BLE001 - reported by the test
                with self.cond:
                    self.error, self.closed = e, True
                    self.cond.notify_all()
                return
            with self.cond:
                self.msgs.append((time.monotonic(), m))
                self.cond.notify_all()

    def send(self, obj):
        self.ws.send_json(obj)

    def mark(self):
        """An index into `msgs` (messages after it are new)."""
        with self.cond:
            return len(self.msgs)

    def since(self, mark=0, types=None):
        with self.cond:
            out = self.msgs[mark:]
        if types is not None:
            out = [(t, m) for t, m in out if m.get("type") in types]
        return out

    def wait(self, pred, timeout, what="message"):
        """Waits until pred(list of (t, msg)) returns truthy (returned); AssertionError after
        `timeout` s or when the connection ends first."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred(self.msgs)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out after %.1f s waiting for %s (%d messages, "
                                         "last %s)" % (self.label, timeout, what, len(self.msgs),
                                                       json.dumps(self.msgs[-1][1])[:300] if self.msgs else None))
                if self.closed:
                    raise AssertionError("%s: connection ended (close code %s, error %r) while waiting "
                                         "for %s" % (self.label, self.close_code, self.error, what))
                self.cond.wait(min(left, 0.5))

    def wait_type(self, mtype, mark=0, timeout=5.0, pred=None):
        """The first message of type `mtype` after `mark` (matching `pred`): (time, msg)."""
        def find(msgs):
            for t, m in msgs[mark:]:
                if m.get("type") == mtype and (pred is None or pred(m)):
                    return (t, m)
            return None
        return self.wait(find, timeout, "a %r message" % mtype)

    def wait_closed(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.closed and time.monotonic() < deadline:
                self.cond.wait(0.2)
            return self.closed, self.close_code

    def stop(self):
        self._halt.set()
        self.join(3)

    def close(self):
        self._halt.set()
        with contextlib.suppress(Exception):
            self.ws.close()
        self.join(3)
