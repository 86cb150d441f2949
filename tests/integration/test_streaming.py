"""End-to-end streaming: ffmpeg publishes over RTMP; HLS, HTTP-FLV and RTMP players receive it."""

import re
import time
import unittest

import harness
from harness import (BackgroundDrain, ServerTestCase, dig, ffprobe_streams, find_stream,
                     flv_time_to_keyframe, open_flv, playlist_segments, rtmp_play, run,
                     subscribers, wait_for)

APP, STREAM = "live", "main"


def assert_h264_720p_aac(test, streams, where):
    video = [s for s in streams if s.get("codec_type") == "video"]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    test.assertEqual(len(video), 1, "%s: video streams %r" % (where, streams))
    test.assertEqual(len(audio), 1, "%s: audio streams %r" % (where, streams))
    test.assertEqual(video[0].get("codec_name"), "h264", where)
    test.assertEqual((video[0].get("width"), video[0].get("height")), (1280, 720), where)
    test.assertEqual(audio[0].get("codec_name"), "aac", where)
    test.assertEqual(int(audio[0].get("sample_rate", 0)), 44100, where)


def media_sequence(playlist):
    m = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist, re.M)
    if not m:
        raise AssertionError("playlist without #EXT-X-MEDIA-SEQUENCE:\n" + playlist)
    return int(m.group(1))


class LiveStreamTests(ServerTestCase):
    """One server and one publisher (live/main) shared by the tests of this class."""

    @classmethod
    def setUpServer(cls):
        cls.publisher = cls.start_class_publisher(APP, STREAM)
        cls.wait_stream_live(APP, STREAM, segments=3, timeout=25)

    def hls_path(self):
        return "/live/%s/%s.m3u8" % (APP, STREAM)

    # ---- probes of each output
    def test_ffprobe_hls(self):
        streams, _ = ffprobe_streams(self.server.http_url(self.hls_path()))
        assert_h264_720p_aac(self, streams, "HLS")

    def test_ffprobe_httpflv(self):
        streams, _ = ffprobe_streams(self.server.http_url("/live/%s/%s.flv" % (APP, STREAM)))
        assert_h264_720p_aac(self, streams, "HTTP-FLV")

    def test_ffprobe_rtmp(self):
        streams, _ = ffprobe_streams(self.server.rtmp_url(APP, STREAM))
        assert_h264_720p_aac(self, streams, "RTMP")

    def test_hls_playlist_and_segments(self):
        status, hdrs, body = self.server.get(self.hls_path())
        self.assertEqual(status, 200)
        self.assertIn("mpegurl", hdrs.get("content-type", "").lower())
        text = body.decode()
        self.assertTrue(text.startswith("#EXTM3U"), text)
        m = re.search(r"^#EXT-X-TARGETDURATION:(\d+)", text, re.M)
        self.assertIsNotNone(m, text)
        segs = playlist_segments(text)
        self.assertGreaterEqual(len(segs), 2, text)
        durations = [float(d) for d in re.findall(r"^#EXTINF:([0-9.]+)", text, re.M)]
        self.assertEqual(len(durations), len(segs), text)
        # RFC 8216 4.3.3.1: every EXTINF rounded to the nearest integer <= TARGETDURATION.
        for d in durations:
            self.assertLessEqual(round(d), int(m.group(1)), text)
            self.assertGreater(d, 0.5, text)  # cut on 1 s keyframes with target duration 1 s
        for s in segs:
            self.assertRegex(s, r"^%s-\d+\.ts$" % STREAM)
        status, hdrs, ts = self.server.get("/live/%s/%s" % (APP, segs[-1]))
        self.assertEqual(status, 200)
        self.assertGreater(len(ts), 188 * 10)
        self.assertEqual(len(ts) % 188, 0, "segment length not a multiple of 188")
        self.assertTrue(all(ts[i] == 0x47 for i in range(0, len(ts), 188)), "TS sync bytes")

    def test_hls_decodes_10s_without_errors(self):
        rc, out, err, elapsed = run(
            [harness.FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-nostats",
             "-progress", "pipe:1", "-i", self.server.http_url(self.hls_path()),
             "-t", "10", "-f", "null", "-"], timeout=60)
        self.assertEqual(rc, 0, "ffmpeg exited %s after %.1f s: %s" % (rc, elapsed, err))
        self.assertEqual(err.strip(), "", "decode errors:\n" + err)
        times = [int(v) for v in re.findall(r"^out_time_us=(\d+)", out, re.M)]
        self.assertTrue(times, out)
        self.assertGreaterEqual(max(times), 9_500_000, "decoded only %.2f s" % (max(times) / 1e6))

    # ---- start-up latency
    def test_httpflv_playback_starts_within_1s(self):
        for attempt in range(3):
            t, tags = flv_time_to_keyframe(self.server.http_port, APP, STREAM, timeout=5)
            self.assertLess(t, 1.0, "attempt %d: first keyframe after %.3f s" % (attempt, t))
            video = [x for x in tags if x.is_video]
            self.assertTrue(video[0].is_avc_sequence_header,
                            "the first video tag is not the AVC sequence header")
            frames = [x for x in video if x.is_video_frame]
            self.assertTrue(frames[0].is_video_keyframe, "the first coded frame is not a keyframe")
            audio = [x for x in tags if x.is_audio]
            if audio:
                self.assertTrue(audio[0].is_aac_sequence_header,
                                "the first audio tag is not the AAC sequence header")

    def test_rtmp_playback_starts_within_1s(self):
        for attempt in range(3):
            c = self.closing(rtmp_play(self.server.rtmp_port, APP, STREAM, timeout=5))
            seen_seq_header = []

            def pred(m):
                if m.type_id == 9 and len(m.payload) >= 2 and m.payload[1] == 0:
                    seen_seq_header.append(m)
                if m.type_id == 9 and len(m.payload) >= 2 and m.payload[1] == 1:
                    return m
                return None
            msg, _ = c.read_until(pred, timeout=5)
            t = msg.t_received - c.t_start
            c.close()
            self.assertLess(t, 1.0, "attempt %d: first video frame after %.3f s" % (attempt, t))
            self.assertTrue(seen_seq_header, "no AVC sequence header before the first frame")
            self.assertTrue(msg.is_video_keyframe, "the first coded RTMP video frame is not a keyframe")

    def test_rtmp_play_status(self):
        c = self.closing(rtmp_play(self.server.rtmp_port, APP, STREAM, timeout=5))
        codes = []
        while "NetStream.Play.Start" not in codes and len(codes) < 5:
            codes.append(c.wait_status(timeout=5).get("code"))
        self.assertIn("NetStream.Play.Start", codes)

    # ---- API
    def stream_obj(self):
        doc = self.server.get_json("/api/v1/streams")
        s = find_stream(doc, APP, STREAM)
        if s is None:
            raise AssertionError("live/main missing from /api/v1/streams: %r" % (doc,))
        return s

    def test_api_stream_info(self):
        s = self.stream_obj()
        self.assertEqual(str(dig(s, "video_codec", "video.codec")).upper(), "H264")
        self.assertEqual(str(dig(s, "audio_codec", "audio.codec")).upper(), "AAC")
        self.assertEqual(int(dig(s, "width", "video.width")), 1280)
        self.assertEqual(int(dig(s, "height", "video.height")), 720)
        fps = float(dig(s, "fps", "video.fps"))
        self.assertTrue(27.0 <= fps <= 33.0, "fps %r" % fps)
        kbps = float(dig(s, "bitrate_kbps", "bitrate", "video.bitrate_kbps"))
        self.assertGreater(kbps, 0)
        self.assertTrue(dig(s, "publishing", "active", "live"))
        one = self.server.get_json("/api/v1/streams/%s/%s" % (APP, STREAM))
        if isinstance(one, dict) and isinstance(one.get("stream"), dict):
            one = one["stream"]
        self.assertEqual(int(dig(one, "width", "video.width")), 1280)
        status, _, _ = self.server.get("/api/v1/streams/%s/%s" % (APP, "no-such-stream"))
        self.assertEqual(status, 404)

    def test_api_subscriber_counts(self):
        def counts():
            s = self.stream_obj()
            return subscribers(s, "httpflv"), subscribers(s, "rtmp")

        # Players of earlier tests are gone: nobody is counted.
        wait_for(lambda: counts() == (0, 0), 5, 0.2, "subscriber counts (0, 0), got %r" % (counts(),))
        flv, flv_reader = open_flv(self.server.http_port, APP, STREAM)
        self.closing(flv)
        drains = [BackgroundDrain(lambda: len(flv.read_body(65536)) or None)]
        players = []
        for _ in range(2):
            c = self.closing(rtmp_play(self.server.rtmp_port, APP, STREAM))
            players.append(c)
            drains.append(BackgroundDrain(lambda c=c: len(c.read_message().payload) + 1))
        for d in drains:
            d.start()
        try:
            wait_for(lambda: counts() == (1, 2), 5, 0.2, "subscriber counts (httpflv 1, rtmp 2)")
            time.sleep(1.0)
            self.assertEqual(counts(), (1, 2))
            for d in drains:
                self.assertIsNone(d.error, "player failed while counted: %r" % (d.error,))
                self.assertGreater(d.count, 0)
        finally:
            for d in drains:
                d._stop_evt.set()
            flv.close()
            for c in players:
                c.close()
            for d in drains:
                d.join(timeout=10)
        wait_for(lambda: counts() == (0, 0), 5, 0.2, "subscriber counts back to (0, 0)")

    def test_api_counts_hls_viewers(self):
        def hls_count():
            return subscribers(self.stream_obj(), "hls")
        viewer = self.procs.add(harness.subprocess.Popen(
            [harness.FFMPEG, "-hide_banner", "-nostdin", "-v", "error",
             "-i", self.server.http_url(self.hls_path()), "-t", "20", "-f", "null", "-"],
            stdin=harness.subprocess.DEVNULL, stdout=harness.subprocess.DEVNULL,
            stderr=harness.subprocess.DEVNULL, env=harness.child_env()))
        try:
            wait_for(lambda: hls_count() >= 1, 8, 0.25,
                     "subscribers.hls >= 1 while an HLS player fetches the playlist and segments")
        finally:
            harness.terminate(viewer)

    def test_metrics(self):
        status, hdrs, body = self.server.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn("text/plain", hdrs.get("content-type", ""))
        text = body.decode()
        m = harness.parse_metrics(text)
        names = {n for n, _ in m}
        self.assertTrue(any(n.startswith("castmesh_") for n in names), text[:2000])
        self.assertIn("castmesh_slow_subscribers_closed_total", names)
        # Counters reflect the live publisher.
        rtmp_in = sum(v for (n, l), v in m.items()
                      if n == "castmesh_bytes_received_total" and "rtmp" in l)
        self.assertGreater(rtmp_in, 1_000_000, "castmesh_bytes_received_total{protocol=rtmp}")
        self.assertGreaterEqual(sum(v for (n, _), v in m.items() if n == "castmesh_streams"), 1)
        self.assertGreaterEqual(sum(v for (n, _), v in m.items() if n == "castmesh_publishes_total"), 1)

    # ---- publisher conflicts
    def test_second_publisher_refused(self):
        rejected_before = self.server.metric_sum("castmesh_publish_rejected_total")
        second = self.start_publisher(APP, STREAM)
        rc = second.wait(15)
        self.assertIsNotNone(rc, "second publisher on a live key still running after 15 s")
        self.assertNotEqual(rc, 0, "second publisher exited 0")
        self.assertTrue(self.publisher.alive(), "first publisher died: " + self.publisher.log_text())
        # The first publisher keeps streaming: HTTP-FLV plays and HLS advances.
        t, _ = flv_time_to_keyframe(self.server.http_port, APP, STREAM, timeout=5)
        self.assertLess(t, 1.0)
        _, _, body = self.server.get(self.hls_path())
        before = playlist_segments(body.decode())[-1]

        def advanced():
            _, _, b = self.server.get(self.hls_path())
            return playlist_segments(b.decode())[-1] != before
        wait_for(advanced, 6, 0.2, "HLS playlist advancing after the refused publish")
        self.assertTrue(self.publisher.alive(), "first publisher died: " + self.publisher.log_text())
        self.assertGreater(self.server.metric_sum("castmesh_publish_rejected_total"), rejected_before,
                           "castmesh_publish_rejected_total did not count the refused publish")


class RepublishAndCleanupTests(ServerTestCase):
    """Publisher stop/start on one key; playlist removal after hls.cleanup_grace_secs."""

    server_env = {"CASTMESH_HLS__CLEANUP_GRACE_SECS": 2}

    def playlist(self, stream):
        status, _, body = self.server.get("/live/%s/%s.m3u8" % (APP, stream))
        return status, body.decode()

    def test_republish_adds_discontinuity(self):
        pub = self.start_publisher(APP, "re")
        self.wait_stream_live(APP, "re", segments=2, timeout=20)
        status, text = self.playlist("re")
        self.assertNotIn("#EXT-X-DISCONTINUITY", text)
        seq_before = media_sequence(text)
        last_before = playlist_segments(text)[-1]
        pub.stop()
        pub2 = self.start_publisher(APP, "re")

        def discontinuity_then_segment():
            st, t = self.playlist("re")
            if st != 200 or "#EXT-X-DISCONTINUITY" not in t:
                return None
            after = t.split("#EXT-X-DISCONTINUITY", 1)[1]
            return t if playlist_segments(after) else None
        text = wait_for(discontinuity_then_segment, 15, 0.2,
                        "#EXT-X-DISCONTINUITY followed by a segment after the republish")
        self.assertGreaterEqual(media_sequence(text), seq_before, "media sequence went back")
        segs = playlist_segments(text)
        nums = [int(re.search(r"-(\d+)\.ts$", s).group(1)) for s in segs]
        self.assertEqual(nums, sorted(set(nums)), "segment numbers not increasing: %r" % segs)
        if last_before in segs:
            # The old segments stay before the discontinuity.
            self.assertLess(text.index(last_before), text.index("#EXT-X-DISCONTINUITY"))
        after = playlist_segments(text.split("#EXT-X-DISCONTINUITY", 1)[1])
        st, _, ts = self.server.get("/live/%s/%s" % (APP, after[0]))
        self.assertEqual(st, 200)
        self.assertEqual(ts[0], 0x47)
        self.assertTrue(pub2.alive(), "republisher died: " + pub2.log_text())
        pub2.stop()

    def test_playlist_removed_after_grace(self):
        pub = self.start_publisher(APP, "gone")
        self.wait_stream_live(APP, "gone", segments=2, timeout=20)
        _, text = self.playlist("gone")
        seg = playlist_segments(text)[0]
        pub.stop()
        t_end = time.monotonic()
        status, _ = self.playlist("gone")
        self.assertEqual(status, 200, "playlist gone immediately, before hls.cleanup_grace_secs=2")

        def gone():
            return self.playlist("gone")[0] == 404
        wait_for(gone, 6, 0.1, "playlist 404 within grace (2 s) + 4 s after the publisher stopped")
        waited = time.monotonic() - t_end
        self.assertGreaterEqual(waited, 1.5, "playlist removed after %.2f s, before the grace" % waited)
        st, _, _ = self.server.get("/live/%s/%s" % (APP, seg))
        self.assertEqual(st, 404, "segment still served after cleanup")


class ShutdownTests(ServerTestCase):
    """SIGTERM with a publisher and players attached."""

    def test_sigterm_exits_0_within_grace(self):
        pub = self.start_publisher(APP, "bye")
        self.wait_stream_live(APP, "bye", segments=1, timeout=20)
        flv, _ = open_flv(self.server.http_port, APP, "bye")
        self.closing(flv)
        player = self.closing(rtmp_play(self.server.rtmp_port, APP, "bye"))
        player.first_keyframe(5)
        flv_drain = BackgroundDrain(lambda: len(flv.read_body(65536)) or None)
        flv_drain.start()
        rc, elapsed = self.server.stop()
        flv_drain.join(timeout=5)
        self.assertEqual(rc, 0, "exit status %s after %.2f s" % (rc, elapsed))
        self.assertLessEqual(elapsed, self.server.grace + harness.EXIT_SLACK_SECS)
        self.assertFalse(flv_drain.is_alive(), "HTTP-FLV player not disconnected at shutdown")
        self.assertTrue(harness.wait_closed(player.sock, 3), "RTMP player not disconnected at shutdown")
        self.assertIsNotNone(pub.wait(5), "publisher still connected after the server exited")


if __name__ == "__main__":
    unittest.main(verbosity=2)
