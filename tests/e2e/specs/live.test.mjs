// Live streams in the browser: a real castmesh ingests an ffmpeg RTMP publish; the Live page
// lists and previews it (HLS and HTTP-FLV), and a room holds two viewers of a live item at the
// same distance from the live edge.
//
// Needs a castmesh binary ($CASTMESH_BIN or build-*/castmesh) and ffmpeg; skipped otherwise.
// When that castmesh does not serve the room API or web/dist yet, the in-memory mock serves
// them and proxies /live/* and /api/v1/streams to castmesh.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findCastmesh, publish, startCastmesh } from '../castmesh.mjs';
import { Api, distExists, launchBrowser, signInPage, sleep, startMock, waitFor } from '../lib.mjs';

const bin = findCastmesh();
const uniq = () => Math.random().toString(36).slice(2, 8);

describe('live', { skip: !bin ? 'no castmesh binary' : !distExists() ? 'web/dist missing' : false }, () => {
  let server;
  let mock;
  let pub;
  let browser;
  let app; // URL of the UI + room API

  before(async () => {
    server = await startCastmesh(bin);
    const index = await fetch(`${server.url}/`).then((r) => (r.ok ? r.text() : ''));
    const rooms = await fetch(`${server.url}/api/v1/rooms`).then((r) => r.status);
    if (index.includes('id="app"') && rooms !== 404) {
      app = server.url;
    } else {
      mock = await startMock({ upstream: server.url });
      app = mock.url;
    }
    pub = publish(`${server.rtmp}/live/e2e`);
    await waitFor(
      async () => {
        const r = await fetch(`${server.url}/api/v1/streams`).then((x) => x.json());
        return r.streams?.some((s) => s.key === 'live/e2e' && s.video?.codec);
      },
      { timeout: 20_000, what: 'stream live/e2e is published' },
    );
    // Let a few HLS segments exist.
    await sleep(5000);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await pub?.stop();
    await mock?.stop();
    await server?.stop();
  });

  it('lists the stream with its codecs and previews it over HLS and HTTP-FLV', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${app}/live`);
    await page.waitForSelector('.stream-row[data-key="live/e2e"]');
    const text = await page.textContent('.stream-row[data-key="live/e2e"]');
    assert.match(text, /H264 640×360/);
    assert.match(text, /AAC 44\.1 kHz stereo/);
    const advancing = async () => {
      const t0 = await page.evaluate(() => window.__castmesh.player?.currentTime ?? 0);
      await sleep(1500);
      const t1 = await page.evaluate(() => window.__castmesh.player?.currentTime ?? 0);
      return t1 > t0 + 0.5;
    };
    await waitFor(advancing, { timeout: 20_000, what: 'HLS preview playing' });
    await page.selectOption('.preview select[aria-label="Protocol"]', 'flv');
    await waitFor(advancing, { timeout: 20_000, what: 'HTTP-FLV preview playing' });
    await ctx.close();
  });

  it('holds two room members at the same distance behind the live edge', async () => {
    const a = new Api(app);
    const b = new Api(app);
    await a.register(`live_a_${uniq()}`);
    await b.register(`live_b_${uniq()}`);
    const { room } = await a.req('POST', '/rooms', { name: `Live ${uniq()}` });
    await b.req('POST', `/rooms/${room.id}/join`, {});
    const pages = [];
    for (const api of [a, b]) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await signInPage(page, app, api.token, api.user);
      await page.goto(`${app}/rooms/${room.id}`);
      await page.waitForFunction(() => window.__castmesh.state() !== null);
      pages.push(page);
    }
    const [pa, pb] = pages;
    await pa.click('.tab[data-tab=playlist]');
    await waitFor(async () => (await pa.locator('select[aria-label="Live stream"] option[value="live/e2e"]').count()) === 1, {
      what: 'live stream offered',
    });
    await pa.selectOption('select[aria-label="Live stream"]', 'live/e2e');
    await pa.click('text=Add live');
    await pa.waitForSelector('.pl-item');
    await pa.click('.pl-item >> nth=0 >> .pl-main');
    await waitFor(async () => (await pa.evaluate(() => window.__castmesh.state()?.item_id)) > 0, { what: 'live item selected' });
    if (!(await pa.evaluate(() => window.__castmesh.state().playing))) await pa.click('button.play-btn');

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
    await pa.context().close();
    await pb.context().close();
  });
});
