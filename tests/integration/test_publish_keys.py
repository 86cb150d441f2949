"""live.require_publish_key: only a room's secret publish key may publish, and the stream then
plays under the room's public name live/room-{id} (the key never appears in the stream list)."""

import os
import unittest

from harness import Publisher, ServerTestCase, wait_for
from test_rooms import Api


class RequirePublishKeyTest(ServerTestCase):
    server_env = {"CASTMESH_LIVE__REQUIRE_PUBLISH_KEY": "true"}

    @classmethod
    def setUpServer(cls):
        cls.api = Api(cls.server.http_port)

    def streams(self):
        return [s["key"] for s in self.server.get_json("/api/v1/streams")["streams"]]

    def test_unknown_stream_name_is_refused(self):
        pub = Publisher(self.server.rtmp_url("live", "not-a-room-key"),
                        os.path.join(self.workdir, "refused.log"), self.procs)
        rc = pub.wait(20)
        self.assertIsNotNone(rc, "ffmpeg kept publishing to a name that is not a publish key")
        self.assertNotEqual(rc, 0)
        self.assertNotIn("live/not-a-room-key", self.streams())
        self.assertGreaterEqual(self.server.metric_sum("castmesh_publish_rejected_total"), 1)

    def test_room_key_publishes_under_the_room_name(self):
        user, token = self.api.register("keyowner_%d" % (os.getpid() % 1000))
        room = self.api.create_room(token, "Live room")
        key = self.api.ok("GET", "/rooms/%s/publish-key" % room["id"], token=token)
        self.assertEqual(key["stream"], "live/room-" + room["id"])
        pub = Publisher(self.server.rtmp_url("live", key["publish_key"]),
                        os.path.join(self.workdir, "room.log"), self.procs)
        wait_for(lambda: ("live/room-" + room["id"]) in self.streams(), 20, what="room stream live")
        self.assertTrue(pub.alive())
        listed = self.streams()
        self.assertFalse(any(key["publish_key"] in s for s in listed), listed)
        # The room's playlist gained the live item.
        items = self.api.ok("GET", "/rooms/%s/playlist" % room["id"], token=token)["items"]
        self.assertTrue(any(i["kind"] == "live" and i["url"] == "live/room-" + room["id"] for i in items), items)


if __name__ == "__main__":
    unittest.main()
