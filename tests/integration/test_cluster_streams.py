"""Clustered live streaming (docs/design.md "Clustered live streaming"): a stream published to
one node plays from every node. Three castmesh nodes on one Redis and the `postgres` fixture's
database; real ffmpeg publishers and ffprobe/ffmpeg/raw HTTP readers as players.

- ClusterStreamsTest: reads from every node (HTTP-FLV and RTMP through an edge relay, HLS through
  the proxy cache), one relay for many players and its release, a second publisher refused,
  HLS requests alternating between nodes, forged relay requests refused.
- SharedFileStoreTest, S3StoreTest: with the shared file store and with the oss store (npm
  s3rver on loopback), B and C read the segments while A is stopped.
- RelayUpstreamTest: a relay upstream that sends garbage is closed and retried while another
  stream plays; players waiting for a relay are bounded (503 beyond relay.max_waiting_players).
- StreamTakeoverTest: with live.publish_takeover a second publisher takes the stream over (higher
  epoch, the first publisher is closed); a restarted node clears the entries it left.
- StreamPartitionTest: the owner hangs (SIGSTOP) while the publisher moves to B; when it
  resumes, its registry writes are refused by epoch, it ends its own publish and serves no relay.
- StreamFailoverTest: the owner is killed (SIGKILL) and the publisher comes back on another node;
  an HTTP-FLV player that stayed on a third node gets video again, and the registry names the new
  owner with a higher epoch.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import socket

import harness
import cluster_harness as ch
from cluster_harness import Cluster, RedisServer, uniq
from harness import HOST, FlvReader, HttpStream, Publisher, ProcessSet, ffprobe_streams, wait_for

RELEASE_DELAY_SECS = 2


class StreamsBase(unittest.TestCase):
    node_kw = {"extra_env": {"CASTMESH_RELAY__RELEASE_DELAY": RELEASE_DELAY_SECS,
                             "CASTMESH_RELAY__RETRY_DELAY": 0.5,
                             "CASTMESH_RELAY__MAX_RETRY_ATTEMPTS": 10,
                             "CASTMESH_HLS__TARGET_DURATION_SECS": 1}}

    @classmethod
    def extra_env(cls):
        """Settings added to every node of the class (after the services it starts)."""
        return {}

    @classmethod
    def start_services(cls):
        """Services the class needs before its nodes start."""

    @classmethod
    def setUpClass(cls):
        cls.workdir = ch.make_workdir(cls.__name__.lower())
        cls.procs = ProcessSet()
        cls.redis = RedisServer(cls.workdir)
        cls.cluster = None
        try:
            cls.redis.start()
            cls.start_services()
            kw = dict(cls.node_kw)
            kw["extra_env"] = dict(kw.get("extra_env", {}), **cls.extra_env())
            cls.prefix = uniq("cms")
            cls.cluster = Cluster(cls.workdir, cls.redis, ch.postgres_url(), cls.prefix, **kw)
            cls.a, cls.b, cls.c = [cls.cluster.add(n) for n in ("node-a", "node-b", "node-c")]
            cls.cluster.wait_all_alive(timeout=20)
        except BaseException:
            if cls.cluster is not None:
                sys.stderr.write(cls.cluster.logs(120) + "\n")
                cls.cluster.kill_all()
            cls.redis.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.procs.kill_all()
        if cls.cluster is not None:
            cls.cluster.stop_all()
        cls.redis.kill()

    def run(self, result=None):
        res = super().run(result)
        if result is not None and (result.failures or result.errors):
            sys.stderr.write(self.cluster.logs(60) + "\n")
        return res

    def publish(self, node, stream):
        log = os.path.join(self.workdir, "ffmpeg-%s-%s-%d.log" % (node.node_id, stream, time.monotonic_ns()))
        return Publisher(node.rtmp_url("live", stream), log, self.procs)

    def owner_of(self, node, stream):
        """(owner, epoch) of `stream` in `node`'s GET /api/v1/streams, or None."""
        for s in node.get_json("/api/v1/streams")["streams"]:
            if s["key"] == "live/" + stream:
                return s["owner"], s["epoch"]
        return None

    def wait_owner(self, stream, owner_id, nodes, timeout=15.0, min_epoch=0):
        def ok():
            for n in nodes:
                o = self.owner_of(n, stream)
                if not o or o[0] != owner_id or o[1] <= min_epoch:
                    return False
            return True
        wait_for(ok, timeout, 0.1, "every node lists %s owned by %s" % (stream, owner_id))
        return self.owner_of(nodes[0], stream)[1]

    @staticmethod
    def metric(node, name, labels=""):
        return node.metrics().get((name, labels), 0)

    @staticmethod
    def codecs(streams):
        return sorted(s["codec_name"] for s in streams)

    def read_flv_until_video(self, reader, timeout):
        """Reads tags until a coded video frame arrives; returns the time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tag = reader.read_tag()
            if tag.is_video_frame:
                return time.monotonic()
        raise AssertionError("no video within %.1f s" % timeout)


class ClusterStreamsTest(StreamsBase):

    def test_1_reads_from_every_node(self):
        pub = self.publish(self.a, "every")
        self.addCleanup(pub.stop)
        self.wait_owner("every", "node-a", [self.a, self.b, self.c])
        # HTTP-FLV and RTMP from B (an edge relay), HLS from C (the proxy to A's segments).
        flv, _ = ffprobe_streams(self.b.http_url("/live/live/every.flv"), extra=["-read_intervals", "%+3"])
        self.assertEqual(self.codecs(flv), ["aac", "h264"])
        rtmp, _ = ffprobe_streams(self.b.rtmp_url("live", "every"), extra=["-read_intervals", "%+3"])
        self.assertEqual(self.codecs(rtmp), ["aac", "h264"])
        wait_for(lambda: self.c.get("/live/live/every.m3u8")[0] == 200, 15, 0.2, "C serves the playlist")
        hls, _ = ffprobe_streams(self.c.http_url("/live/live/every.m3u8"))
        self.assertEqual(self.codecs(hls), ["aac", "h264"])
        # The listing on C names the owner and shows B relaying.
        doc = self.c.get_json("/api/v1/streams")
        s = [x for x in doc["streams"] if x["key"] == "live/every"][0]
        self.assertEqual(s["owner"], "node-a")
        self.assertEqual(s["video"]["codec"], "H264")
        self.assertEqual(sorted(n["node_id"] for n in s["nodes"]), ["node-a", "node-b", "node-c"])
        # A stream nobody publishes: 404 right after the lookup on any node.
        t0 = time.monotonic()
        self.assertEqual(self.b.get("/live/live/nobody.flv")[0], 404)
        self.assertEqual(self.c.get("/live/live/nobody.m3u8")[0], 404)
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_2_one_relay_for_many_players(self):
        pub = self.publish(self.a, "many")
        self.addCleanup(pub.stop)
        self.wait_owner("many", "node-a", [self.a, self.b])
        players = []
        try:
            for _ in range(200):
                p = HttpStream(self.b.http_port, "/live/live/many.flv", timeout=10)
                players.append(p)
            for p in players:
                self.assertEqual(p.read_head(), 200)
            # Every player gets video through the one relay.
            for p in players[:20]:
                r = FlvReader(p)
                r.read_header()
                self.read_flv_until_video(r, 10)
            relay_conns = lambda: self.metric(self.a, "castmesh_connections", '{protocol="relay"}')
            wait_for(lambda: relay_conns() == 1, 10, 0.1, "A serves exactly one relay")
            self.assertEqual(self.metric(self.b, "castmesh_relays_active"), 1)
            time.sleep(1.0)
            self.assertEqual(relay_conns(), 1, "still one relay for 200 players")
        finally:
            for p in players:
                p.close()
        t_closed = time.monotonic()
        wait_for(lambda: self.metric(self.b, "castmesh_relays_active") == 0, 15, 0.1, "the relay is released")
        released_after = time.monotonic() - t_closed
        self.assertGreaterEqual(released_after, RELEASE_DELAY_SECS - 0.3, "released before release_delay")
        wait_for(lambda: self.metric(self.a, "castmesh_connections", '{protocol="relay"}') == 0, 10, 0.1,
                 "A's relay connection closed")

    def test_3_second_publisher_refused(self):
        pub = self.publish(self.a, "twice")
        self.addCleanup(pub.stop)
        epoch = self.wait_owner("twice", "node-a", [self.a, self.b])
        second = self.publish(self.b, "twice")
        rc = second.wait(15)
        self.assertIsNotNone(rc, "the second publisher on B was not closed")
        self.assertNotEqual(rc, 0)
        self.assertTrue(pub.alive(), "the first publisher keeps streaming")
        self.assertEqual(self.owner_of(self.c, "twice"), ("node-a", epoch))
        self.assertGreaterEqual(self.metric(self.b, "castmesh_registry_claims_lost_total"), 1)

    def test_4_alternating_hls(self):
        pub = self.publish(self.a, "alt")
        self.addCleanup(pub.stop)
        self.wait_owner("alt", "node-a", [self.a, self.b, self.c])
        nodes = [self.a, self.b, self.c]
        wait_for(lambda: all(n.get("/live/live/alt.m3u8")[0] == 200 for n in nodes), 15, 0.2, "playlists")
        out = tempfile.NamedTemporaryFile(suffix=".ts", delete=False, dir=self.workdir)
        seen = []
        i = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            n = nodes[i % 3]
            i += 1
            st, _, body = n.get("/live/live/alt.m3u8")
            self.assertEqual(st, 200, "playlist from %s" % n.node_id)
            for uri in harness.playlist_segments(body.decode()):
                if uri in seen:
                    continue
                m = nodes[i % 3]
                i += 1
                st, _, seg = m.get("/live/live/" + uri)
                self.assertEqual(st, 200, "%s from %s" % (uri, m.node_id))
                out.write(seg)
                seen.append(uri)
            time.sleep(0.3)
        out.close()
        self.assertGreaterEqual(len(seen), 5)
        # The same playlist names and bytes on every node.
        names = [harness.playlist_segments(n.get("/live/live/alt.m3u8")[2].decode())[:2] for n in nodes]
        self.assertTrue(names[0] == names[1] or names[1] == names[2], names)
        seg = seen[-2]
        bodies = [n.get("/live/live/" + seg)[2] for n in nodes]
        self.assertEqual(bodies[0], bodies[1])
        self.assertEqual(bodies[1], bodies[2])
        rc, _, err, _ = harness.run([harness.FFMPEG, "-v", "error", "-i", out.name, "-f", "null", "-"], 60)
        self.assertEqual(rc, 0, err)
        self.assertEqual(err.strip(), "", "ffmpeg reported decode errors")
        # Segments are fetched once per node: a second read is a cache hit, not an upstream fetch.
        misses = self.metric(self.b, "castmesh_hls_proxy_misses_total")
        hits = self.metric(self.b, "castmesh_hls_proxy_hits_total")
        self.assertGreater(misses, 0)
        for _ in range(3):
            self.assertEqual(self.b.get("/live/live/" + seg)[0], 200)
        self.assertEqual(self.metric(self.b, "castmesh_hls_proxy_misses_total"), misses)
        self.assertEqual(self.metric(self.b, "castmesh_hls_proxy_hits_total"), hits + 3)

    def test_5_forged_relay_requests_refused(self):
        st, _, _ = self.a.internode("GET", "/internal/v1/relay/live/x.flv")
        self.assertEqual(st, 401)
        st, _, _, _ = self.a.signed("GET", "/internal/v1/relay/live/x.flv", secret="wrong-secret", node_id="node-b")
        self.assertEqual(st, 401)
        st, _, _, _ = self.a.signed("GET", "/internal/v1/hls/live/x/x.m3u8", secret="wrong-secret", node_id="node-b")
        self.assertEqual(st, 401)
        # Correctly signed, but A does not publish it: 404.
        st, _, _, _ = self.a.signed("GET", "/internal/v1/relay/live/x.flv", node_id="node-b")
        self.assertEqual(st, 404)


class RelayUpstreamTest(StreamsBase):
    """A relay whose upstream sends garbage, beside a stream that plays; waiting players bounded."""

    node_kw = {"extra_env": dict(StreamsBase.node_kw["extra_env"], CASTMESH_RELAY__MAX_WAITING_PLAYERS=3)}

    def test_garbage_upstream_is_closed_and_retried(self):
        # A registry entry of live node B whose address is a fake upstream that answers 200 and
        # then sends bytes that are not FLV.
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((HOST, 0))
        srv.listen(16)
        srv.settimeout(0.2)
        self.addCleanup(srv.close)
        accepted = []
        stop = threading.Event()

        def serve():
            while not stop.is_set() and len(accepted) < 20:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                accepted.append(time.monotonic())
                try:
                    conn.settimeout(2)
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\n" + b"NOT-FLV!" * 64)
                    time.sleep(0.2)
                finally:
                    conn.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        key = "%s:pub:live/garbage" % self.prefix
        self.redis.cmd("HSET", key, "stream", "live/garbage", "node", "node-b",
                       "addr", "%s:%d" % (HOST, srv.getsockname()[1]), "epoch", "1", "gen", "g", "started_ms", "1",
                       "codecs", "H264,AAC")
        self.redis.cmd("PEXPIRE", key, "60000")
        self.redis.cmd("SADD", "%s:pubs" % self.prefix, "live/garbage")
        self.addCleanup(lambda: self.redis.cmd("DEL", key))
        wait_for(lambda: self.owner_of(self.c, "garbage") is not None, 10, 0.1, "C sees the entry")
        pub = self.publish(self.a, "beside")
        self.addCleanup(pub.stop)
        self.wait_owner("beside", "node-a", [self.c])
        errors0 = self.metric(self.c, "castmesh_protocol_errors_total", '{protocol="relay"}')
        # The player waits for the relay's first media (no response head before it).
        bad = HttpStream(self.c.http_port, "/live/live/garbage.flv", timeout=10)
        self.addCleanup(bad.close)
        good = HttpStream(self.c.http_port, "/live/live/beside.flv", timeout=10)
        self.addCleanup(good.close)
        self.assertEqual(good.read_head(), 200)
        reader = FlvReader(good)
        reader.read_header()
        wait_for(lambda: len(accepted) >= 2, 15, 0.1, "the relay retried the garbage upstream")
        # Players waiting for a relay's first media are bounded: beyond relay.max_waiting_players
        # (3 here) an HTTP-FLV player gets 503 at once.
        waiting = [HttpStream(self.c.http_port, "/live/live/garbage.flv", timeout=10) for _ in range(2)]
        for w in waiting:
            self.addCleanup(w.close)
        time.sleep(0.3)
        t0 = time.monotonic()
        st, _, _ = self.c.get("/live/live/garbage.flv")
        self.assertEqual(st, 503)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertGreater(self.metric(self.c, "castmesh_protocol_errors_total", '{protocol="relay"}'), errors0)
        # The other stream kept playing beside it.
        self.read_flv_until_video(reader, 5)
        self.assertTrue(self.c.alive())



class SharedStoreBase(StreamsBase):
    """B and C read A's HLS segments from the shared store while A is stopped (SIGSTOP)."""

    def test_segments_readable_with_owner_stopped(self):
        pub = self.publish(self.a, "shared")
        self.addCleanup(pub.stop)
        self.wait_owner("shared", "node-a", [self.a, self.b, self.c])

        def listed(n):
            st, _, body = n.get("/live/live/shared.m3u8")
            return harness.playlist_segments(body.decode()) if st == 200 else []
        wait_for(lambda: len(listed(self.b)) >= 2 and len(listed(self.c)) >= 2, 20, 0.2, "B and C list segments")
        os.kill(self.a.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: os.kill(self.a.proc.pid, signal.SIGCONT) if self.a.alive() else None)
        time.sleep(0.5)
        segs = listed(self.b)
        self.assertGreaterEqual(len(segs), 2)
        self.assertEqual(listed(self.c), segs, "B and C read the same playlist")
        for uri in segs:
            st_b, _, body_b = self.b.get("/live/live/" + uri)
            st_c, _, body_c = self.c.get("/live/live/" + uri)
            self.assertEqual((st_b, st_c), (200, 200), uri)
            self.assertEqual(body_b, body_c, uri)
            self.assertGreater(len(body_b), 188)
            self.assertEqual(body_b[0], 0x47, "an MPEG-TS segment")
        self.assertEqual(self.metric(self.b, "castmesh_hls_proxy_misses_total"), 0, "no proxy with a shared store")


class SharedFileStoreTest(SharedStoreBase):
    @classmethod
    def extra_env(cls):
        return {"CASTMESH_HLS__STORE": "file", "CASTMESH_HLS__SHARED_STORAGE": "true",
                "CASTMESH_HLS__DIR": os.path.join(cls.workdir, "shared-hls")}


class S3StoreTest(SharedStoreBase):
    """The oss store against a real S3-compatible server (npm s3rver, tests/s3) on loopback."""

    @classmethod
    def start_services(cls):
        s3rver = os.path.join(ch.REPO, "tests", "s3", "node_modules", ".bin", "s3rver")
        if not os.path.exists(s3rver):
            raise AssertionError("s3rver is not installed: run scripts/web-build (npm ci in tests/s3)")
        cls.s3_port = harness.free_ports(1)[0]
        log = open(os.path.join(cls.workdir, "s3rver.log"), "ab")
        cls.s3 = cls.procs.add(subprocess.Popen(
            [s3rver, "-d", os.path.join(cls.workdir, "s3"), "-a", HOST, "-p", str(cls.s3_port),
             "--configure-bucket", "castmesh", "--silent"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        log.close()

        def up():
            try:
                with socket.create_connection((HOST, cls.s3_port), timeout=0.5):
                    return True
            except OSError:
                return False
        wait_for(up, 20, 0.1, "s3rver listening")

    @classmethod
    def extra_env(cls):
        return {"CASTMESH_HLS__STORE": "oss",
                "CASTMESH_HLS__OSS__ENDPOINT": "http://%s:%d" % (HOST, cls.s3_port),
                "CASTMESH_HLS__OSS__BUCKET": "castmesh",
                "CASTMESH_HLS__OSS__BASE_PATH": "hls",
                "CASTMESH_HLS__OSS__ACCESS_KEY_ID": "S3RVER",
                "CASTMESH_HLS__OSS__SECRET_ACCESS_KEY": "S3RVER"}

    def test_unknown_access_key_is_refused_by_the_server(self):
        # s3rver checks the access key id and the request time of a SigV4 request but not the
        # signature itself (its source says so); the signature is checked against AWS's own
        # example in s3_store_test.cpp. An unknown key: S3 refuses, the node logs it and goes on.
        self.assertIn("InvalidAccessKeyId", self._publish_with_key("NOT-A-KEY"))
        self.assertNotIn("InvalidAccessKeyId", self._publish_with_key("S3RVER"))

    def _publish_with_key(self, access_key):
        env = dict(self.node_kw["extra_env"])
        env.update(self.extra_env())
        env["CASTMESH_HLS__OSS__ACCESS_KEY_ID"] = access_key
        node = self.cluster.add("node-k%s" % access_key[:3].lower(), extra_env=env)
        try:
            pub = self.publish(node, "key" + access_key[:3].lower())
            wait_for(lambda: node.get("/live/live/key%s.m3u8" % access_key[:3].lower())[0] == 200, 15, 0.2,
                     "the node's own playlist")
            time.sleep(2)
            pub.stop()
            return node.log_text()
        finally:
            node.stop()


class StreamTakeoverTest(StreamsBase):
    """live.publish_takeover: a publish on B of a stream A publishes takes it over; a node that
    restarts clears the entries its earlier process left."""

    @classmethod
    def extra_env(cls):
        return {"CASTMESH_LIVE__PUBLISH_TAKEOVER": "true"}

    def test_takeover_then_restart_clears_stale_entries(self):
        pub_a = self.publish(self.a, "tk")
        self.addCleanup(pub_a.stop)
        epoch_a = self.wait_owner("tk", "node-a", [self.a, self.b, self.c])
        pub_b = self.publish(self.b, "tk")
        self.addCleanup(pub_b.stop)
        epoch_b = self.wait_owner("tk", "node-b", [self.a, self.b, self.c], min_epoch=epoch_a)
        self.assertGreater(epoch_b, epoch_a)
        self.assertIsNotNone(pub_a.wait(10), "A's publisher was not closed after the takeover")
        self.assertTrue(pub_b.alive())
        self.assertGreaterEqual(self.metric(self.b, "castmesh_registry_takeovers_total"), 1)
        self.assertGreaterEqual(self.metric(self.a, "castmesh_registry_fenced_total"), 1)
        # B dies and comes straight back (same node id) before the others call it offline: its
        # new process removes the entry the old one left.
        key = "%s:pub:live/tk" % self.prefix
        self.assertTrue(self.redis.cmd("HGETALL", key))
        self.b.kill()
        pub_b.stop()
        self.b.start(ready_timeout=30)
        wait_for(lambda: not self.redis.cmd("HGETALL", key), 5, 0.05, "B's stale entry removed")
        self.assertIn("cleared 1 stale registry entries of this node", self.b.log_text())


class StreamFailoverTest(StreamsBase):

    def test_owner_killed_publisher_returns_elsewhere(self):
        pub = self.publish(self.a, "fo")
        epoch_a = self.wait_owner("fo", "node-a", [self.a, self.b, self.c])
        player = HttpStream(self.c.http_port, "/live/live/fo.flv", timeout=20)
        self.addCleanup(player.close)
        self.assertEqual(player.read_head(), 200)
        reader = FlvReader(player)
        reader.read_header()
        self.read_flv_until_video(reader, 10)
        # HLS on C (through the proxy to A) before the failover.
        def seqs():
            st, _, body = self.c.get("/live/live/fo.m3u8")
            return st, body.decode(), [int(u.rsplit("-", 1)[1][:-3]) for u in harness.playlist_segments(body.decode())] if st == 200 else []
        wait_for(lambda: len(seqs()[2]) >= 2, 15, 0.2, "C lists A's segments")
        last_a = max(seqs()[2])
        statuses = []
        stop_polling = threading.Event()

        def poll():
            while not stop_polling.is_set():
                statuses.append(seqs()[0])
                time.sleep(0.2)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        self.addCleanup(stop_polling.set)
        # Kill the owner; its publisher dies with the connection.
        self.a.kill()
        pub.stop()
        # The registry drops A's streams once A is offline (leader clean-up).
        wait_for(lambda: self.owner_of(self.c, "fo") is None, 15, 0.1, "A's entry removed")
        pub2 = self.publish(self.b, "fo")
        self.addCleanup(pub2.stop)
        t_republish = time.monotonic()
        epoch_b = self.wait_owner("fo", "node-b", [self.b, self.c], min_epoch=epoch_a)
        self.assertGreater(epoch_b, epoch_a)
        # The player on C stayed connected and gets video from B.
        t_video = self.read_flv_until_video(reader, 15)
        sys.stderr.write("failover: video on C %.2f s after the republish\n" % (t_video - t_republish))
        self.assertLess(t_video - t_republish, 3.0)
        # HLS on C continues after A's last segment, with a discontinuity, and never answered 404.
        def continued():
            st, text, nums = seqs()
            return st == 200 and nums and min(nums) > last_a and "#EXT-X-DISCONTINUITY" in text
        wait_for(continued, 15, 0.2, "C's playlist continues from B after A's segments")
        stop_polling.set()
        poller.join(5)
        self.assertTrue(statuses, "no playlist polled")
        self.assertNotIn(404, statuses, "C answered 404 for the playlist during the failover: %s" % statuses)


if __name__ == "__main__":
    unittest.main()


class StreamPartitionTest(StreamsBase):

    def test_partitioned_owner_is_fenced(self):
        pub_a = self.publish(self.a, "pt")
        self.addCleanup(pub_a.stop)
        epoch_a = self.wait_owner("pt", "node-a", [self.a, self.b, self.c])
        player = HttpStream(self.c.http_port, "/live/live/pt.flv", timeout=20)
        self.addCleanup(player.close)
        self.assertEqual(player.read_head(), 200)
        reader = FlvReader(player)
        reader.read_header()
        self.read_flv_until_video(reader, 10)
        # A hangs (a partition as its peers see it); the publisher comes back on B.
        os.kill(self.a.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: os.kill(self.a.proc.pid, signal.SIGCONT) if self.a.alive() else None)
        wait_for(lambda: self.b.node_states().get("node-a") != "alive", 10, 0.1, "B sees A not alive")
        pub_b = self.publish(self.b, "pt")
        self.addCleanup(pub_b.stop)
        epoch_b = self.wait_owner("pt", "node-b", [self.b, self.c], min_epoch=epoch_a)
        self.assertGreater(epoch_b, epoch_a)
        self.read_flv_until_video(reader, 10)  # C's relay follows B
        # A comes back: its lease writes are refused by epoch and it ends its own publish.
        os.kill(self.a.proc.pid, signal.SIGCONT)
        wait_for(lambda: self.metric(self.a, "castmesh_registry_fenced_total") >= 1, 15, 0.2,
                 "A's publish fenced")
        rc = pub_a.wait(15)
        self.assertIsNotNone(rc, "A's old publisher was not closed")
        self.assertTrue(pub_b.alive())
        # Every node, A included, names B; A serves no relay of its old epoch.
        for n in (self.a, self.b, self.c):
            wait_for(lambda n=n: self.owner_of(n, "pt") == ("node-b", epoch_b), 10, 0.2,
                     "%s names node-b" % n.node_id)
        st, _, _, _ = self.a.signed("GET", "/internal/v1/relay/live/pt.flv?epoch=%d" % epoch_a, node_id="node-c")
        self.assertEqual(st, 404)
        self.read_flv_until_video(reader, 10)  # the player on C still plays B's stream
