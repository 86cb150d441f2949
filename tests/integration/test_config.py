"""`castmesh config check`, `castmesh --help` and start-up refusal on bad settings."""

import os
import re
import shutil
import socket
import tempfile
import textwrap
import unittest

import harness
from harness import HOST, Server, castmesh_bin, child_env, free_ports, run

# Every configuration key (section.key); each must be settable as CASTMESH_<SECTION>__<KEY>.
KEYS = [
    "server.host", "server.port", "server.threads", "server.request_timeout_ms", "server.send_timeout_ms",
    "server.max_body_bytes", "server.max_connections", "server.shutdown_grace_secs",
    "server.log_level",
    "rtmp.enabled", "rtmp.host", "rtmp.port", "rtmp.handshake_timeout_ms", "rtmp.idle_timeout_ms",
    "rtmp.send_timeout_ms", "rtmp.max_chunk_size", "rtmp.max_message_bytes", "rtmp.out_chunk_size",
    "rtmp.window_ack_size", "rtmp.merge_window_ms", "rtmp.max_connections",
    "httpflv.enabled", "httpflv.send_timeout_ms", "httpflv.merge_window_ms",
    "hls.enabled", "hls.store", "hls.dir", "hls.shared_storage", "hls.target_duration_secs",
    "hls.window", "hls.cleanup_grace_secs", "hls.max_segment_bytes",
    "live.gop_cache_max_bytes", "live.gop_cache_gops", "live.subscriber_max_lag_ms",
    "live.idle_timeout_ms",
]


def env_name(key):
    section, name = key.split(".", 1)
    return "CASTMESH_%s__%s" % (section.upper(), name.upper())


GOOD = """\
server:
  host: 127.0.0.1
  port: 18080
  threads: 2
  log_level: debug
rtmp:
  port: 11935
  handshake_timeout_ms: 3000
httpflv:
  send_timeout_ms: 5000
hls:
  store: file
  dir: hls-data
  shared_storage: true
  target_duration_secs: 2
  window: 5
live:
  gop_cache_gops: 2
"""


class ConfigCheckTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="castmesh-itest-config-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def check(self, path):
        rc, out, err, _ = run([castmesh_bin(), "config", "check", path], timeout=15, cwd=self.dir)
        self.assertIsNotNone(rc, "config check did not finish")
        return rc, out + err

    def assert_rejected(self, text, *keys):
        path = self.write("bad.yaml", text)
        rc, out = self.check(path)
        self.assertNotEqual(rc, 0, "config check accepted:\n%s\noutput: %s" % (text, out))
        for k in keys:
            self.assertIn(k, out, "message does not name %s:\n%s" % (k, out))
        return out

    def test_good_file_accepted(self):
        rc, out = self.check(self.write("good.yaml", GOOD))
        self.assertEqual(rc, 0, out)

    def test_empty_file_accepted(self):
        rc, out = self.check(self.write("empty.yaml", "{}\n"))
        self.assertEqual(rc, 0, out)

    def test_unknown_key_rejected(self):
        self.assert_rejected("rtmp:\n  port: 11935\n  bogus_key: 1\n", "rtmp.bogus_key")

    def test_unknown_section_rejected(self):
        self.assert_rejected("rtpm:\n  port: 11935\n", "rtpm")

    def test_port_out_of_range_rejected(self):
        self.assert_rejected("server:\n  port: 70000\n", "server.port")

    def test_negative_port_rejected(self):
        self.assert_rejected("rtmp:\n  port: -1\n", "rtmp.port")

    def test_wrong_type_rejected(self):
        self.assert_rejected("rtmp:\n  enabled: maybe\n", "rtmp.enabled")

    def test_bad_enum_rejected(self):
        self.assert_rejected("hls:\n  store: tape\n", "hls.store")

    def test_shared_storage_with_memory_store_rejected(self):
        self.assert_rejected("hls:\n  store: memory\n  shared_storage: true\n", "hls.shared_storage")

    def test_every_problem_reported(self):
        out = self.assert_rejected("""\
            server:
              port: 70000
            rtmp:
              bogus_key: 1
            hls:
              store: memory
              shared_storage: true
            """, "server.port", "rtmp.bogus_key", "hls.shared_storage")
        self.assertIn("bad.yaml", out, "messages do not name the file")

    def test_yaml_syntax_error_rejected(self):
        out = self.assert_rejected("server:\n  port: [1, 2\n", "bad.yaml")

    def test_missing_file_rejected(self):
        path = os.path.join(self.dir, "nope.yaml")
        rc, out = self.check(path)
        self.assertNotEqual(rc, 0)
        self.assertIn("nope.yaml", out)

    def test_example_file_accepted(self):
        example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                               "castmesh.example.yaml")
        if not os.path.exists(example):
            self.skipTest("castmesh.example.yaml not in the tree")
        rc, out = self.check(example)
        self.assertEqual(rc, 0, out)
        with open(example) as f:
            text = f.read()
        for k in KEYS:
            self.assertIn(env_name(k), text, "example file does not mention %s" % env_name(k))


class HelpTests(unittest.TestCase):
    def test_help_lists_keys_with_env_names(self):
        rc, out, err, _ = run([castmesh_bin(), "--help"], timeout=15)
        self.assertEqual(rc, 0, err)
        text = out + err
        lines = text.splitlines()

        def mentions(line, key):
            return re.search(r"(^|[\s`'\"])%s($|[\s:=`'\"])" % re.escape(key), line) is not None

        for k in KEYS:
            # The key's entry: from its line to the line naming the next key (at most 6 lines).
            starts = [i for i, l in enumerate(lines) if mentions(l, k)]
            self.assertTrue(starts, "--help does not list %s" % k)
            found = False
            for i in starts:
                entry = [lines[i]]
                for l in lines[i + 1:i + 6]:
                    if any(mentions(l, other) for other in KEYS if other != k):
                        break
                    entry.append(l)
                found = found or any(env_name(k) in l for l in entry)
            self.assertTrue(found, "--help lists %s without %s in its entry" % (k, env_name(k)))
        for cmd in ("serve", "config"):
            self.assertIn(cmd, text)

    def test_unknown_command_fails(self):
        rc, out, err, _ = run([castmesh_bin(), "frobnicate"], timeout=15)
        self.assertIsNotNone(rc)
        self.assertNotEqual(rc, 0)


class ServeStartupTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="castmesh-itest-serve-")
        self.procs = harness.ProcessSet()

    def tearDown(self):
        self.procs.kill_all()
        shutil.rmtree(self.dir, ignore_errors=True)

    def serve_env(self, **extra):
        http_port, rtmp_port = free_ports(2)
        env = {"CASTMESH_SERVER__HOST": HOST, "CASTMESH_SERVER__PORT": http_port,
               "CASTMESH_RTMP__HOST": HOST, "CASTMESH_RTMP__PORT": rtmp_port}
        env.update(extra)
        return env

    def test_bad_env_value_refused(self):
        cases = [
            ("CASTMESH_SERVER__PORT", "notaport"),
            ("CASTMESH_RTMP__PORT", "70000"),
            ("CASTMESH_HLS__STORE", "tape"),
            ("CASTMESH_RTMP__ENABLED", "maybe"),
            ("CASTMESH_RTMP__BOGUS_KEY", "1"),
            ("CASTMESH_HLS__SHARED_STORAGE", "true"),
        ]
        for var, value in cases:
            with self.subTest(var=var, value=value):
                env = child_env(self.serve_env(**{var: value}))
                rc, out, err, elapsed = run([castmesh_bin(), "serve"], timeout=10, env=env, cwd=self.dir)
                self.assertIsNotNone(rc, "serve with %s=%s kept running" % (var, value))
                self.assertNotEqual(rc, 0, "serve with %s=%s exited 0" % (var, value))
                self.assertIn(var, out + err, "message does not name %s:\n%s" % (var, out + err))

    def test_config_file_and_env_override(self):
        file_http, env_http, rtmp_port = free_ports(3)
        path = os.path.join(self.dir, "castmesh.yaml")
        with open(path, "w") as f:
            f.write("server:\n  host: 127.0.0.1\n  port: %d\n  shutdown_grace_secs: 2\n"
                    "rtmp:\n  host: 127.0.0.1\n  port: %d\n" % (file_http, rtmp_port))
        srv = Server(self.dir, args=["serve", "-c", path])
        # Only the HTTP port comes from the environment: it must win over the file.
        srv.env = {"CASTMESH_SERVER__PORT": env_http}
        srv.http_port, srv.rtmp_port, srv.grace = env_http, rtmp_port, 2.0
        try:
            srv.start()
            with self.assertRaises(OSError, msg="the file's server.port is listening"):
                socket.create_connection((HOST, file_http), timeout=1).close()
            c = harness.RtmpClient(rtmp_port, timeout=5)
            try:
                c.handshake()  # rtmp.port from the file
            finally:
                c.close()
            rc, elapsed = srv.stop()
            self.assertEqual(rc, 0, "exit status %s" % rc)
            self.assertLessEqual(elapsed, 2.0 + harness.EXIT_SLACK_SECS)
        except BaseException:
            print(srv.log_tail())
            raise
        finally:
            srv.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
