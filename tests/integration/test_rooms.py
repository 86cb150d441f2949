"""Integration tests: accounts, rooms and the room WebSocket protocol (docs/protocol.md) against
the real binary. Python 3 standard library only.

The PostgreSQL test (RoomsPostgresTest) runs only when CASTMESH_PG_TEST_KEY names a running
`scripts/pg-test` instance (or CASTMESH_TEST_PG_URL is set); CTest registers it as
integration.rooms_postgres with the `postgres` fixture and runs the rest as integration.rooms.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import HOST, ServerTestCase, Server, wait_for
from wsclient import WsClient, HandshakeError, Closed

PASSWORD = "correct horse battery"
# Small enough to test 1009 cheaply, large enough for every normal message.
MAX_FRAME = 4096


def api(port, method, path, body=None, token=None, timeout=10.0, raw=None):
    """One HTTP request to the API; returns (status, {lower header: value}, parsed JSON or None)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {}
        data = None
        if raw is not None:
            data = raw
            headers["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        doc = None
        if payload:
            try:
                doc = json.loads(payload.decode("utf-8"))
            except ValueError:
                doc = {"_raw": payload[:300]}
        return resp.status, hdrs, doc
    finally:
        conn.close()


class Api:
    """Convenience wrapper bound to one server port; `ok` asserts the status."""

    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, token=None, **kw):
        return api(self.port, method, "/api/v1" + path, body, token, **kw)

    def ok(self, method, path, body=None, token=None, status=200):
        st, _, doc = self.call(method, path, body, token)
        if st != status:
            raise AssertionError("%s %s -> %d %r (expected %d)" % (method, path, st, doc, status))
        return doc

    def register(self, username, password=PASSWORD):
        doc = self.ok("POST", "/auth/register", {"username": username, "password": password},
                      status=201)
        return doc["user"], doc["token"]

    def create_room(self, token, name, **extra):
        body = {"name": name}
        body.update(extra)
        return self.ok("POST", "/rooms", body, token, status=201)["room"]

    def join(self, token, room_id):
        return self.ok("POST", "/rooms/%s/join" % room_id, {}, token)["member"]

    def chat_history(self, token, room_id):
        return self.ok("GET", "/rooms/%s/chat?limit=200" % room_id, None, token)["messages"]


def ws_connect(port, room_id, token, timeout=5.0):
    return WsClient(HOST, port, "/api/v1/rooms/%s/ws?token=%s" % (room_id, token), timeout=timeout)


class RoomsTestBase(ServerTestCase):
    server_env = {
        "CASTMESH_ROOMS__WS_MAX_FRAME_BYTES": MAX_FRAME,
        "CASTMESH_ROOMS__KICK_COOLDOWN_SECS": 60,
    }
    _counter = 0

    @classmethod
    def setUpServer(cls):
        cls.api = Api(cls.server.http_port)

    def uname(self, prefix):
        type(self)._counter += 1
        return "%s_%d_%d" % (prefix, os.getpid() % 1000, type(self)._counter)

    def ws(self, room_id, token):
        return self.closing(ws_connect(self.server.http_port, room_id, token))

    def welcome(self, c):
        m = c.recv_type("welcome")
        self.assertEqual(m.get("v"), 1, m)
        return m

    def room_with(self, n_members=1):
        """A fresh room: (room, [(user, token)...]) — the first user is its creator, the others
        joined as members."""
        users = [self.api.register(self.uname("u")) for _ in range(n_members + 1)]
        room = self.api.create_room(users[0][1], "room " + self.uname("r"))
        for u, t in users[1:]:
            self.api.join(t, room["id"])
        return room, users

    def assert_chat_works(self, sender, receivers, text):
        sender.send_json({"type": "chat", "text": text})
        for r in receivers:
            m = r.recv_type("chat", skip=("presence", "pong", "member", "live", "state"))
            self.assertEqual(m["message"]["text"], text)


# ------------------------------------------------------------------------------------------------
class AccountsTest(RoomsTestBase):

    def test_register_login_me_logout(self):
        name = self.uname("acct")
        user, token = self.api.register(name)
        self.assertEqual(user["username"], name)
        self.assertTrue(token)
        me = self.api.ok("GET", "/auth/me", token=token)["user"]
        self.assertEqual(me["username"], name)
        self.assertEqual(me["id"], user["id"])
        # Duplicate registration is refused.
        st, _, doc = self.api.call("POST", "/auth/register", {"username": name, "password": PASSWORD})
        self.assertEqual(st, 409, doc)
        # Login gives a second, independent session.
        doc = self.api.ok("POST", "/auth/login", {"username": name, "password": PASSWORD})
        token2 = doc["token"]
        self.assertNotEqual(token2, token)
        self.assertEqual(doc["user"]["id"], user["id"])
        self.assertEqual(self.api.ok("GET", "/auth/me", token=token2)["user"]["id"], user["id"])
        # Logout ends that session only.
        self.api.ok("POST", "/auth/logout", {}, token2, status=204)
        st, _, doc = self.api.call("GET", "/auth/me", token=token2)
        self.assertEqual(st, 401, doc)
        self.assertEqual(self.api.ok("GET", "/auth/me", token=token)["user"]["id"], user["id"])
        # No token, garbage token.
        self.assertEqual(self.api.call("GET", "/auth/me")[0], 401)
        self.assertEqual(self.api.call("GET", "/auth/me", token="garbage")[0], 401)

    def test_wrong_password_401_and_bad_usernames(self):
        name = self.uname("wp")
        self.api.register(name)
        st, _, doc = self.api.call("POST", "/auth/login", {"username": name, "password": "wrong password!"})
        self.assertEqual(st, 401, doc)
        self.assertIn("error", doc)
        self.assertNotIn("token", doc)
        st, _, doc = self.api.call("POST", "/auth/login", {"username": "nobody_" + name, "password": PASSWORD})
        self.assertEqual(st, 401, doc)
        for bad in ("ab", "x" * 33, "bad name", "semi;colon", "quote'", "<script>", "ünï"):
            st, _, doc = self.api.call("POST", "/auth/register", {"username": bad, "password": PASSWORD})
            self.assertEqual(st, 400, (bad, doc))
        st, _, doc = self.api.call("POST", "/auth/register", {"username": self.uname("sp"), "password": "short"})
        self.assertEqual(st, 400, doc)
        st, _, doc = self.api.call("POST", "/auth/register", raw=b"{not json")
        self.assertEqual(st, 400, doc)

    def test_login_flood_429_retry_after(self):
        name = self.uname("flood")
        self.api.register(name)
        statuses = []
        hdrs429 = None
        for _ in range(12):
            st, hdrs, doc = self.api.call("POST", "/auth/login", {"username": name, "password": "wrong password!"})
            statuses.append(st)
            if st == 429:
                hdrs429 = (hdrs, doc)
                break
        self.assertIn(429, statuses, statuses)
        self.assertTrue(all(s == 401 for s in statuses[:-1]), statuses)
        hdrs, doc = hdrs429
        self.assertIn("retry-after", hdrs)
        self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
        self.assertEqual(doc.get("code"), "rate_limited", doc)
        # Even the right password is refused while limited.
        st, _, _ = self.api.call("POST", "/auth/login", {"username": name, "password": PASSWORD})
        self.assertEqual(st, 429)

    def test_admin_create_user_cli(self):
        pw_file = os.path.join(self.workdir, "admin-pw")
        with open(pw_file, "w") as f:
            f.write("admin password 123\n")
        env = harness.child_env(self.server.env)
        rc, out, err, _ = harness.run(
            [harness.castmesh_bin(), "admin", "create-user", "admin1", "--role", "admin",
             "--password-file", pw_file], 30, env=env, cwd=self.workdir)
        self.assertEqual(rc, 0, out + err)
        doc = self.api.ok("POST", "/auth/login", {"username": "admin1", "password": "admin password 123"})
        self.assertEqual(doc["user"]["username"], "admin1")
        self.assertEqual(doc["user"]["role"], "admin")
        me = self.api.ok("GET", "/auth/me", token=doc["token"])["user"]
        self.assertEqual(me["role"], "admin")
        # The same name again fails.
        rc, out, err, _ = harness.run(
            [harness.castmesh_bin(), "admin", "create-user", "admin1", "--role", "admin",
             "--password-file", pw_file], 30, env=env, cwd=self.workdir)
        self.assertNotEqual(rc, 0, out + err)


# ------------------------------------------------------------------------------------------------
class RoomSyncTest(RoomsTestBase):

    def setUp(self):
        super().setUp()
        self.room, users = self.room_with(1)
        (self.alice, self.ta), (self.bob, self.tb) = users
        self.rid = self.room["id"]
        self.a1 = self.ws(self.rid, self.ta)
        self.w_a1 = self.welcome(self.a1)
        self.a2 = self.ws(self.rid, self.ta)
        self.w_a2 = self.welcome(self.a2)
        self.b = self.ws(self.rid, self.tb)
        self.w_b = self.welcome(self.b)
        self.all = [self.a1, self.a2, self.b]
        # Settle presence.
        time.sleep(0.3)
        for c in self.all:
            c.drain(0.2)

    def send_state(self, c, msg):
        """Sends `msg` from `c`; every socket gets the state broadcast; returns the states."""
        c.send_json(msg)
        return [x.recv_type("state") for x in self.all]

    def test_welcome_contents(self):
        w = self.w_b
        self.assertIsInstance(w["server_time_ms"], int)
        self.assertLess(abs(w["server_time_ms"] - time.time() * 1000), 5000)
        self.assertEqual(w["room"]["id"], self.rid)
        self.assertEqual(w["room"]["name"], self.room["name"])
        self.assertIsInstance(w["room"]["settings"], dict)
        self.assertEqual(w["you"]["user_id"], self.bob["id"])
        self.assertEqual(w["you"]["username"], self.bob["username"])
        self.assertEqual(w["you"]["role"], "member")
        self.assertEqual(set(w["you"]["permissions"]),
                         {"control_playback", "seek", "manage_playlist", "chat"})
        self.assertEqual(self.w_a1["you"]["role"], "creator")
        self.assertEqual(set(self.w_a1["you"]["permissions"]),
                         {"control_playback", "seek", "manage_playlist", "manage_members", "chat",
                          "manage_live"})
        st = w["state"]
        for k in ("item_id", "position_s", "rate", "playing", "updated_at_ms", "version"):
            self.assertIn(k, st)
        self.assertIsInstance(w["playlist"]["items"], list)
        self.assertIsInstance(w["chat"], list)
        online = {m["user_id"]: m for m in w["members"]}
        self.assertIn(self.alice["id"], online, w["members"])
        self.assertEqual(online[self.alice["id"]]["connections"], 2, w["members"])
        self.assertIn(self.bob["id"], online)
        # Presence seen by a tab after the room settles.
        self.a1.send_json({"type": "ping", "t": 1234, "ref": "p1"})
        pong = self.a1.recv_type("pong", skip=("presence",))
        self.assertEqual(pong["t"], 1234)
        self.assertIsInstance(pong["server_time_ms"], int)

    def test_playback_broadcast_in_order(self):
        v0 = self.w_a1["state"]["version"]
        seq = [
            ("play", self.a1, {"type": "play", "position_s": 0}),
            ("seek", self.b, {"type": "seek", "position_s": 42.5}),
            ("rate", self.a2, {"type": "rate", "rate": 1.5}),
            ("pause", self.b, {"type": "pause", "position_s": 50.0}),
        ]
        v = v0
        for reason, sender, msg in seq:
            msg = dict(msg, version=v)
            states = self.send_state(sender, msg)
            for s in states:
                self.assertEqual(s["reason"], reason, s)
                self.assertEqual(s["state"]["version"], v + 1, s)
                self.assertIsInstance(s["server_time_ms"], int)
            by = states[0]["by"]
            want_uid = self.bob["id"] if sender is self.b else self.alice["id"]
            self.assertEqual(by["user_id"], want_uid)
            self.assertEqual(states[0]["state"], states[1]["state"])
            self.assertEqual(states[0]["state"], states[2]["state"])
            v += 1
        final = states[0]["state"]
        self.assertFalse(final["playing"])
        self.assertAlmostEqual(final["position_s"], 50.0, places=3)
        self.assertAlmostEqual(final["rate"], 1.5, places=3)
        self.assertEqual(final["version"], v0 + 4)
        # A seek arrives with the requested position.
        states = self.send_state(self.a1, {"type": "seek", "version": v, "position_s": 7.0})
        self.assertAlmostEqual(states[2]["state"]["position_s"], 7.0, places=3)

    def test_stale_version_changes_nothing(self):
        v0 = self.w_a1["state"]["version"]
        self.send_state(self.a1, {"type": "seek", "version": v0, "position_s": 10.0})
        self.b.send_json({"type": "seek", "version": v0, "position_s": 99.0, "ref": "r-stale"})
        err = self.b.recv_type("error")
        self.assertEqual(err["code"], "stale_version", err)
        self.assertEqual(err.get("ref"), "r-stale")
        self.assertEqual(err["state"]["version"], v0 + 1)
        self.assertAlmostEqual(err["state"]["position_s"], 10.0, places=3)
        # Nobody got a state change.
        for c in self.all:
            self.assertFalse([m for m in c.drain(0.4) if m.get("type") == "state"])
        # A fresh tab sees the unchanged state.
        c = self.ws(self.rid, self.tb)
        w = self.welcome(c)
        self.assertEqual(w["state"]["version"], v0 + 1)
        self.assertAlmostEqual(w["state"]["position_s"], 10.0, places=3)

    def test_chat_special_text_roundtrip(self):
        texts = ["<script>alert(1)</script>", "Robert'); DROP TABLE users;--",
                 "\"quotes\" \\backslash\\ \u00e9\u4e2d\U0001F600 %s %d {}"]
        for t in texts:
            self.b.send_json({"type": "chat", "text": t})
            for c in self.all:
                m = c.recv_type("chat")
                self.assertEqual(m["message"]["text"], t)
                self.assertEqual(m["message"]["user_id"], self.bob["id"])
                self.assertEqual(m["message"]["username"], self.bob["username"])
        hist = self.api.chat_history(self.ta, self.rid)
        self.assertEqual([m["text"] for m in hist][-3:], texts)
        # Users table survived.
        self.assertEqual(self.api.ok("GET", "/auth/me", token=self.tb)["user"]["id"], self.bob["id"])
        # And a late joiner's welcome carries them, oldest first.
        c = self.ws(self.rid, self.ta)
        w = self.welcome(c)
        self.assertEqual([m["text"] for m in w["chat"]][-3:], texts)

    def test_revoked_seek_forbidden_and_revoke_wins(self):
        v0 = self.w_a1["state"]["version"]
        doc = self.api.ok("PATCH", "/rooms/%s/members/%s" % (self.rid, self.bob["id"]),
                          {"revoke": ["seek"]}, self.ta)
        self.assertNotIn("seek", doc["member"]["permissions"])
        m = self.b.recv_type("member", skip=("presence", "pong", "live"))
        self.assertNotIn("seek", m["member"]["permissions"])
        self.b.send_json({"type": "seek", "version": v0, "position_s": 77.0, "ref": 5})
        err = self.b.recv_type("error", skip=("presence", "pong", "live", "member"))
        self.assertEqual(err["code"], "forbidden", err)
        self.assertEqual(err.get("ref"), 5)
        # Revocation wins over a grant: a name granted and revoked in one patch stays revoked
        # (a later grant on its own replaces an earlier revoke: the server keeps the two sets
        # disjoint, so the formula (role | grants) & ~revokes decides within one patch).
        doc = self.api.ok("PATCH", "/rooms/%s/members/%s" % (self.rid, self.bob["id"]),
                          {"grant": ["seek", "manage_live"], "revoke": ["seek", "manage_live"]},
                          self.ta)
        self.assertNotIn("seek", doc["member"]["permissions"], doc)
        self.assertNotIn("manage_live", doc["member"]["permissions"], doc)
        self.assertIn("seek", doc["member"]["revokes"], doc)
        members = {m["user_id"]: m for m in
                   self.api.ok("GET", "/rooms/%s/members" % self.rid, token=self.ta)["members"]}
        self.assertNotIn("seek", members[self.bob["id"]]["permissions"])
        self.b.drain(0.3)
        self.b.send_json({"type": "seek", "version": v0, "position_s": 78.0})
        err = self.b.recv_type("error", skip=("presence", "pong", "live", "member"))
        self.assertEqual(err["code"], "forbidden", err)
        # Other permissions still work for bob (play), and the state did not move to 77/78.
        states = self.send_state(self.b, {"type": "play", "version": v0})
        self.assertEqual(states[0]["state"]["version"], v0 + 1)
        self.assertLess(states[0]["state"]["position_s"], 5.0)
        # A member without manage_members cannot change permissions.
        st, _, doc = self.api.call("PATCH", "/rooms/%s/members/%s" % (self.rid, self.bob["id"]),
                                   {"clear": ["seek"]}, self.tb)
        self.assertEqual(st, 403, doc)
        # Clearing the revoke restores it.
        doc = self.api.ok("PATCH", "/rooms/%s/members/%s" % (self.rid, self.bob["id"]),
                          {"clear": ["seek"]}, self.ta)
        self.assertIn("seek", doc["member"]["permissions"], doc)

    def test_kick(self):
        st, _, doc = self.api.call("POST", "/rooms/%s/members/%s/kick" % (self.rid, self.bob["id"]),
                                   {"cooldown_secs": 60}, self.tb)
        self.assertEqual(st, 403, doc)  # a plain member may not kick
        b2 = self.ws(self.rid, self.tb)  # bob's second tab
        self.welcome(b2)
        self.api.ok("POST", "/rooms/%s/members/%s/kick" % (self.rid, self.bob["id"]),
                    {"cooldown_secs": 60}, self.ta, status=204)
        for sock in (self.b, b2):
            code, seen = sock.wait_close(5.0)
            kicked = [m for m in seen if m.get("type") == "kicked"]
            self.assertTrue(kicked, seen)
            self.assertEqual(seen[-1]["type"], "kicked", seen)
            self.assertGreater(kicked[0]["until_ms"], time.time() * 1000 + 30000)
            self.assertLess(kicked[0]["until_ms"], time.time() * 1000 + 70000)
            self.assertEqual(code, 4001)
        # Presence for the others no longer lists bob.
        def bob_gone():
            ms = self.a1.recv_type("presence", timeout=2.0, skip=("pong", "member", "live", "chat"))
            return self.bob["id"] not in [m["user_id"] for m in ms["members"]]
        wait_for(bob_gone, 5.0, 0.0, "presence without the kicked user")
        # Rejoin within the cooldown is refused.
        with self.assertRaises(HandshakeError) as cm:
            ws_connect(self.server.http_port, self.rid, self.tb).close()
        self.assertEqual(cm.exception.status, 403)
        st, _, doc = self.api.call("POST", "/rooms/%s/join" % self.rid, {}, self.tb)
        self.assertEqual(st, 403, doc)
        # The others are unaffected.
        self.assert_chat_works(self.a1, [self.a1, self.a2], "still here")
        v = self.w_a1["state"]["version"]
        self.a2.send_json({"type": "play", "version": v})
        for c in (self.a1, self.a2):
            self.assertEqual(c.recv_type("state")["state"]["version"], v + 1)


# ------------------------------------------------------------------------------------------------
class BadInputTest(RoomsTestBase):

    def setUp(self):
        super().setUp()
        self.room, users = self.room_with(1)
        (self.alice, self.ta), (self.bob, self.tb) = users
        self.rid = self.room["id"]
        self.a = self.ws(self.rid, self.ta)
        self.welcome(self.a)
        self.b = self.ws(self.rid, self.tb)
        self.welcome(self.b)
        time.sleep(0.2)
        self.a.drain(0.2)
        self.seed = "seed message %s" % self.uname("s")
        self.assert_chat_works(self.a, [self.a, self.b], self.seed)

    def check_intact(self, survivor):
        """`survivor` (alice's socket) still gets chat; the rooms list and chat history are intact."""
        c2 = self.ws(self.rid, self.ta)
        self.welcome(c2)
        text = "after %s" % self.uname("x")
        self.assert_chat_works(survivor, [survivor, c2], text)
        rooms = self.api.ok("GET", "/rooms", token=self.ta)["rooms"]
        self.assertIn(self.rid, [r["id"] for r in rooms])
        mine = [r for r in rooms if r["id"] == self.rid][0]
        self.assertEqual(mine["name"], self.room["name"])
        hist = [m["text"] for m in self.api.chat_history(self.ta, self.rid)]
        self.assertIn(self.seed, hist)
        self.assertEqual(hist[-1], text)

    def wait_offline(self, user_id):
        """The members list reports no connection of `user_id` (its socket was closed)."""
        def offline():
            ms = self.api.ok("GET", "/rooms/%s/members" % self.rid, token=self.ta)["members"]
            return [m for m in ms if m["user_id"] == user_id][0]["connections"] == 0
        wait_for(offline, 5.0, 0.1, "user %s offline" % user_id)

    def test_upgrade_refusals(self):
        outsider, to = self.api.register(self.uname("out"))
        cases = [(self.rid, None, 401), (self.rid, "garbage-token", 401), (self.rid, to, 403),
                 ("NoSuchRoom1", self.ta, 404)]
        for rid, token, want in cases:
            path = "/api/v1/rooms/%s/ws" % rid + ("?token=%s" % token if token else "")
            with self.assertRaises(HandshakeError, msg=(rid, token)) as cm:
                WsClient(HOST, self.server.http_port, path).close()
            self.assertEqual(cm.exception.status, want, (rid, token, cm.exception.body))
        # The bearer header works as well as ?token=.
        c = self.closing(WsClient(HOST, self.server.http_port, "/api/v1/rooms/%s/ws" % self.rid,
                                  headers={"Authorization": "Bearer " + self.tb}))
        self.assertEqual(self.welcome(c)["you"]["user_id"], self.bob["id"])
        self.check_intact(self.a)

    def test_bad_json(self):
        self.b.send_text("{not json")
        err = self.b.recv_type("error")
        self.assertEqual(err["code"], "bad_json", err)
        self.b.send_text("[1,2,3]")
        err = self.b.recv_type("error")
        self.assertIn(err["code"], ("bad_json", "bad_message"), err)
        self.b.send_json({"no_type": 1})
        err = self.b.recv_type("error")
        self.assertIn(err["code"], ("bad_message", "bad_json"), err)
        # bob's socket still works too.
        self.assert_chat_works(self.b, [self.a, self.b], "bob after bad json")
        self.check_intact(self.a)

    def test_unknown_type(self):
        self.b.send_json({"type": "drop_all_tables", "ref": "u1"})
        err = self.b.recv_type("error")
        self.assertEqual(err["code"], "unknown_type", err)
        self.assertEqual(err.get("ref"), "u1")
        self.b.send_json({"type": "seek", "version": "x", "position_s": -5})
        err = self.b.recv_type("error")
        self.assertIn(err["code"], ("bad_message", "stale_version"), err)
        self.b.send_json({"type": "chat", "text": ""})
        err = self.b.recv_type("error")
        self.assertEqual(err["code"], "bad_message", err)
        self.check_intact(self.a)

    def test_too_large_frame_closes_1009(self):
        self.b.send_json({"type": "chat", "text": "A" * (MAX_FRAME + 100)})
        code, seen = self.b.wait_close(5.0)
        self.assertEqual(code, 1009, seen)
        self.wait_offline(self.bob["id"])
        # The big message was not stored nor broadcast.
        got = self.a.drain(0.4)
        self.assertFalse([m for m in got if m.get("type") == "chat"], got)
        self.check_intact(self.a)
        hist = [m["text"] for m in self.api.chat_history(self.ta, self.rid)]
        self.assertFalse([t for t in hist if t.startswith("AAAA")])

    def test_flood_rate_limited(self):
        n = 300
        try:
            for i in range(n):
                self.b.send_json({"type": "ping", "t": i})
        except OSError:
            pass  # the server may close the socket mid-flood
        limited, pongs, code = 0, 0, None
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                m = self.b.recv_json(2.0)
            except Closed as c:
                code = c.code
                break
            except (socket.timeout, TimeoutError):
                break
            if m.get("type") == "error" and m.get("code") == "rate_limited":
                limited += 1
            elif m.get("type") == "pong":
                pongs += 1
        self.assertTrue(limited > 0 or code == 1008, (limited, pongs, code))
        # The excess was dropped: nowhere near every ping was answered (burst 40 at 20/s).
        self.assertLess(pongs, n // 2, (limited, pongs, code))
        self.assertGreater(pongs, 0)
        if code is not None:
            self.assertEqual(code, 1008)
            self.wait_offline(self.bob["id"])
        self.check_intact(self.a)

    def test_unicode_and_sql_names_roundtrip(self):
        name = "O'Brien.-_%s" % self.uname("q")
        name = name.replace("'", "")  # apostrophes are outside the username charset
        user, token = self.api.register(name[:32])
        self.assertEqual(user["username"], name[:32])
        self.assertEqual(self.api.ok("GET", "/auth/me", token=token)["user"]["username"], name[:32])
        login = self.api.ok("POST", "/auth/login", {"username": name[:32], "password": PASSWORD})
        self.assertEqual(login["user"]["id"], user["id"])
        for room_name in ["Robert'); DROP TABLE rooms;--", "<b>caf\u00e9</b> \u4e2d\u6587 \U0001F3AC",
                          "\" OR 1=1 --"]:
            room = self.api.create_room(token, room_name)
            self.assertEqual(room["name"], room_name)
            got = self.api.ok("GET", "/rooms/%s" % room["id"], token=token)["room"]
            self.assertEqual(got["name"], room_name)
            listed = [r for r in self.api.ok("GET", "/rooms", token=token)["rooms"] if r["id"] == room["id"]]
            self.assertEqual(listed[0]["name"], room_name)
            c = self.ws(room["id"], token)
            w = self.welcome(c)
            self.assertEqual(w["room"]["name"], room_name)
            self.assertEqual(w["you"]["username"], name[:32])
            c.close()
        # Everything else is still there.
        self.check_intact(self.a)


# ------------------------------------------------------------------------------------------------
def postgres_url():
    url = os.environ.get("CASTMESH_TEST_PG_URL")
    if url:
        return url
    key = os.environ.get("CASTMESH_PG_TEST_KEY")
    if not key:
        return None
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "pg-test")
    rc, out, err, _ = harness.run([script, "url", key], 30)
    if rc != 0:
        raise AssertionError("scripts/pg-test url %s failed: %s" % (key, err))
    return out.strip()


@unittest.skipUnless(os.environ.get("CASTMESH_TEST_PG_URL") or os.environ.get("CASTMESH_PG_TEST_KEY"),
                     "no PostgreSQL instance (set CASTMESH_PG_TEST_KEY or CASTMESH_TEST_PG_URL)")
class RoomsPostgresTest(unittest.TestCase):

    def test_state_persists_across_restart(self):
        url = postgres_url()
        self.assertTrue(url.startswith("postgres"), url)
        workdir = tempfile.mkdtemp(prefix="castmesh-itest-pg-")
        env = {"CASTMESH_DATABASE__URL": url}
        server = Server(workdir, env)
        ok = False
        try:
            server.start(ready_timeout=30)
            a = Api(server.http_port)
            suffix = "%d_%d" % (os.getpid(), int(time.time()) % 100000)
            alice, ta = a.register("pga_" + suffix)
            bob, tb = a.register("pgb_" + suffix)
            room_name = "pg room '; DROP TABLE rooms;-- \u00e9 " + suffix
            room = a.create_room(ta, room_name)
            rid = room["id"]
            a.join(tb, rid)
            a.ok("PATCH", "/rooms/%s/members/%s" % (rid, bob["id"]), {"revoke": ["seek"]}, ta)
            item = a.ok("POST", "/rooms/%s/playlist" % rid,
                        {"kind": "url", "url": "https://example.com/v.m3u8?a=1&b='x'",
                         "title": "t\u00eftle <i>"}, ta, status=201)["item"]
            ca = ws_connect(server.http_port, rid, ta)
            cb = ws_connect(server.http_port, rid, tb)
            try:
                v = ca.recv_type("welcome")["state"]["version"]
                cb.recv_type("welcome")
                texts = ["<script>alert(1)</script>", "Robert'); DROP TABLE users;--"]
                for t in texts:
                    cb.send_json({"type": "chat", "text": t})
                    self.assertEqual(ca.recv_type("chat")["message"]["text"], t)
                ca.send_json({"type": "seek", "version": v, "position_s": 123.25})
                self.assertEqual(ca.recv_type("state")["state"]["version"], v + 1)
                ca.send_json({"type": "rate", "version": v + 1, "rate": 2.0})
                s = ca.recv_type("state")["state"]
                self.assertEqual(s["version"], v + 2)
                skip = ("presence", "pong", "member", "live", "chat")
                self.assertEqual(cb.recv_type("state", skip=skip)["state"]["version"], v + 1)
                self.assertEqual(cb.recv_type("state", skip=skip)["state"]["version"], v + 2)
            finally:
                ca.close()
                cb.close()
            time.sleep(0.5)
            rc, _ = server.stop()
            self.assertEqual(rc, 0)

            server = Server(workdir, env)
            server.start(ready_timeout=30)
            a = Api(server.http_port)
            self.assertEqual(a.ok("GET", "/auth/me", token=ta)["user"]["id"], alice["id"])
            login = a.ok("POST", "/auth/login", {"username": "pgb_" + suffix, "password": PASSWORD})
            self.assertEqual(login["user"]["id"], bob["id"])
            rooms = [r for r in a.ok("GET", "/rooms", token=ta)["rooms"] if r["id"] == rid]
            self.assertEqual(len(rooms), 1)
            self.assertEqual(rooms[0]["name"], room_name)
            members = {m["user_id"]: m for m in a.ok("GET", "/rooms/%s/members" % rid, token=ta)["members"]}
            self.assertEqual(members[alice["id"]]["role"], "creator")
            self.assertEqual(members[bob["id"]]["role"], "member")
            self.assertNotIn("seek", members[bob["id"]]["permissions"])
            hist = [m["text"] for m in a.chat_history(ta, rid)]
            self.assertEqual(hist[-2:], texts)
            items = a.ok("GET", "/rooms/%s/playlist" % rid, token=ta)["items"]
            self.assertEqual([(i["id"], i["url"], i["title"]) for i in items],
                             [(item["id"], item["url"], item["title"])])
            self.assertEqual(item["url"], "https://example.com/v.m3u8?a=1&b='x'")
            cb = ws_connect(server.http_port, rid, login["token"])
            try:
                w = cb.recv_type("welcome")
                st = w["state"]
                self.assertEqual(st["version"], v + 2)
                self.assertAlmostEqual(st["rate"], 2.0, places=3)
                self.assertFalse(st["playing"])
                self.assertAlmostEqual(st["position_s"], 123.25, places=2)
                self.assertEqual([m["text"] for m in w["chat"]][-2:], texts)
                self.assertNotIn("seek", w["you"]["permissions"])
            finally:
                cb.close()
            rc, _ = server.stop()
            self.assertEqual(rc, 0)
            # Everything went to PostgreSQL: no SQLite database was created.
            self.assertFalse(os.path.exists(os.path.join(workdir, "data", "castmesh.db")),
                             os.listdir(workdir))
            ok = True
        finally:
            if not ok:
                sys.stderr.write(server.log_tail() + "\n")
            server.kill()
            if ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                sys.stderr.write("kept work directory %s\n" % workdir)


if __name__ == "__main__":
    unittest.main()
