// Live streams in the browser against a real `castmesh serve`: ffmpeg publishes a 720p test
// pattern over RTMP; the Live page lists and previews it (HLS and HTTP-FLV); a room plays it
// for two members, holds them at the same distance from the live edge, and a room's secret
// publish key used as the RTMP stream name shows the stream as live/room-{id} in that room.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { publish, startCastmesh } from '../castmesh.mjs';
import { Api, distExists, launchBrowser, screenshot, signInPage, sleep, waitFor } from '../lib.mjs';

const uniq = () => Math.random().toString(36).slice(2, 8);

describe('live', () => {
  let server;
  let pub;
  let browser;
  let app; // URL of the UI + room API

  before(async () => {
    if (!distExists()) throw new Error('web/dist is missing: run scripts/web-build first');
    server = await startCastmesh();
    app = server.url;
    pub = publish(`${server.rtmp}/live/e2e`);
    await waitForStream('live/e2e');
    // Let a few HLS segments exist.
    await sleep(4000);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await pub?.stop();
    await server?.stop();
  });

  const waitForStream = (key) =>
    waitFor(
      async () => {
        const r = await fetch(`${server.url}/api/v1/streams`).then((x) => x.json());
        return r.streams?.some((s) => s.key === key && s.video?.codec);
      },
      { timeout: 30_000, what: `stream ${key} is published` },
    );

  const advancing = async (page) => {
    const t0 = await page.evaluate(() => window.__castmesh.player?.currentTime ?? 0);
    await sleep(1500);
    const t1 = await page.evaluate(() => window.__castmesh.player?.currentTime ?? 0);
    return t1 > t0 + 0.5 ? [t0, t1] : null;
  };

  /// Two signed-in members (different users) with the room page open; resolves {room, a, b, pages}.
  async function roomWithTwo(prefix) {
    const a = new Api(app);
    const b = new Api(app);
    await a.register(`${prefix}_a_${uniq()}`);
    await b.register(`${prefix}_b_${uniq()}`);
    const { room } = await a.req('POST', '/rooms', { name: `Live ${uniq()}` });
    await b.req('POST', `/rooms/${room.id}/join`, {});
    const pages = [];
    for (const api of [a, b]) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await ctx.newPage();
      await signInPage(page, app, api.token, api.user);
      await page.goto(`${app}/rooms/${room.id}`);
      await page.waitForFunction(() => window.__castmesh.state() !== null);
      pages.push(page);
    }
    return { room, a, b, pages };
  }

  /// Adds the live stream `key` through the playlist tab of `page`, selects it and plays.
  async function addLive(page, key) {
    await page.click('.tab[data-tab=playlist]');
    await waitFor(async () => (await page.locator(`select[aria-label="Live stream"] option[value="${key}"]`).count()) === 1, {
      timeout: 20_000,
      what: `live stream ${key} offered`,
    });
    await page.selectOption('select[aria-label="Live stream"]', key);
    await page.click('text=Add live');
    await page.waitForSelector('.pl-item');
    await page.click('.pl-item >> nth=0 >> .pl-main');
    await waitFor(async () => (await page.evaluate(() => window.__castmesh.state()?.item_id)) > 0, { what: 'live item selected' });
    if (!(await page.evaluate(() => window.__castmesh.state().playing))) await page.click('button.play-btn');
  }

  it('lists the stream with its codecs and previews it over HLS and HTTP-FLV', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${app}/live`);
    await page.waitForSelector('.stream-row[data-key="live/e2e"]');
    const text = await page.textContent('.stream-row[data-key="live/e2e"]');
    assert.match(text, /H264 1280×720/);
    assert.match(text, /AAC/);
    await waitFor(() => advancing(page), { timeout: 20_000, what: 'HLS preview playing' });
    await page.selectOption('.preview select[aria-label="Protocol"]', 'flv');
    await waitFor(() => advancing(page), { timeout: 20_000, what: 'HTTP-FLV preview playing' });
    await screenshot(page, 'live-page');
    await ctx.close();
  });

  it('plays in a room for two members held at the same distance behind the live edge', async () => {
    const { pages } = await roomWithTwo('live');
    const [pa, pb] = pages;
    await addLive(pa, 'live/e2e');
    for (const [name, p] of [['A', pa], ['B', pb]]) {
      const [t0, t1] = await waitFor(() => advancing(p), { timeout: 30_000, interval: 200, what: `live plays for ${name}` });
      console.log(`live in room: ${name} currentTime ${t0.toFixed(2)} -> ${t1.toFixed(2)} in 1.5 s`);
    }

    const sample = (p) =>
      p.evaluate(() => {
        const s = window.__castmesh.state();
        const v = window.__castmesh.player;
        return {
          t: v.currentTime,
          paused: v.paused,
          target: s.target_s,
          offset: s.live_target_offset_s,
          drift: window.__castmesh.drift(),
          frags: s.hls_fragments,
        };
      });
    await waitFor(
      async () => {
        const [x, y] = await Promise.all([sample(pa), sample(pb)]);
        return !x.paused && !y.paused && x.drift !== null && y.drift !== null && Math.abs(x.drift) < 0.1 && Math.abs(y.drift) < 0.1;
      },
      { timeout: 40_000, interval: 500, what: 'both viewers settled at the live offset' },
    );
    // The players' media timelines have different origins; a fragment both of them list maps
    // one onto the other, so the content each shows can be compared.
    const [x, y] = await Promise.all([sample(pa), sample(pb)]);
    const common = Object.keys(x.frags ?? {}).find((sn) => y.frags && sn in y.frags);
    assert.ok(common, 'the players share a playlist fragment');
    const shift = x.frags[common] - y.frags[common];
    const apart = Math.abs(x.t - (y.t + shift));
    console.log(`live viewers ${apart.toFixed(3)} s apart, drifts ${x.drift} ${y.drift}`);
    assert.ok(apart < 0.35, `viewers ${apart.toFixed(3)} s apart (${JSON.stringify({ x, y })})`);
    await screenshot(pa, 'room-live-a');
    await screenshot(pb, 'room-live-b');
    await pa.context().close();
    await pb.context().close();
  });

  it("a room's publish key as the RTMP stream name shows the stream as live/room-{id} in the room", async () => {
    const { room, a, pages } = await roomWithTwo('key');
    const key = await a.req('GET', `/rooms/${room.id}/publish-key`);
    assert.equal(key.stream, `live/room-${room.id}`);
    assert.ok(key.publish_key && !key.publish_key.includes(room.id), 'the key is not the room id');
    const keyed = publish(`${server.rtmp}/live/${key.publish_key}`);
    try {
      await waitForStream(`live/room-${room.id}`);
      const listed = await fetch(`${server.url}/api/v1/streams`).then((x) => x.json());
      assert.ok(!listed.streams.some((s) => s.key.includes(key.publish_key)), 'the secret key is never listed');
      const [pa, pb] = pages;
      await waitFor(async () => {
        const items = await pb.evaluate(() => window.__castmesh.engine.items);
        return items.some((i) => i.kind === 'live' && i.url === `live/room-${room.id}`);
      }, { timeout: 15_000, what: 'room stream added to the playlist' });
      await waitFor(async () => (await pa.evaluate(() => window.__castmesh.state()?.item_id)) > 0, { what: 'room stream selected' });
      if (!(await pa.evaluate(() => window.__castmesh.state().playing))) await pa.click('button.play-btn');
      for (const [name, p] of [['A', pa], ['B', pb]]) {
        const [t0, t1] = await waitFor(() => advancing(p), { timeout: 30_000, interval: 200, what: `room stream plays for ${name}` });
        console.log(`publish-key stream: ${name} currentTime ${t0.toFixed(2)} -> ${t1.toFixed(2)} in 1.5 s`);
      }
      await screenshot(pb, 'room-publish-key-stream');
    } finally {
      await keyed.stop();
      for (const p of pages) await p.context().close();
    }
  });
});
