// Browser test of watch-together across two cluster nodes: two real `castmesh serve` processes in
// cluster mode share one PostgreSQL (scripts/pg-test) and one redis-server (started here). Member
// A's browser context talks to node 1 and member B's to node 2; A pauses, seeks and changes the
// rate, and B's <video> follows each within 500 ms. Run with CASTMESH_PG_TEST_KEY set (CTest:
// e2e.cluster, which starts the `postgres` fixture).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterSettings, postgresUrl, startClusterNode, startRedis, waitClusterAlive } from './cluster_nodes.mjs';
import { Api, controlsReachPeer, distExists, launchBrowser, makeMedia, roomState as state, screenshot, signInPage, sleep, startMediaServer, videoOf as local, waitFor } from './lib.mjs';

const uniq = () => Math.random().toString(36).slice(2, 8);

let redis;
let media;
let node1;
let node2;
let browser;

before(async () => {
  if (!distExists()) throw new Error('web/dist is missing: run scripts/web-build first');
  const pg = postgresUrl();
  media = await startMediaServer(await makeMedia(90));
  redis = await startRedis();
  const settings = clusterSettings(redis.url, pg);
  node1 = await startClusterNode(settings, `e2e-n1-${uniq()}`);
  node2 = await startClusterNode(settings, `e2e-n2-${uniq()}`);
  await waitClusterAlive([node1, node2]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node1?.stop();
  await node2?.stop();
  await redis?.stop();
  await media?.stop();
});

/// A signed-in browser context for a new user registered through `base`'s API.
async function newUserPage(base, name) {
  const api = new Api(base);
  await api.register(name);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signInPage(page, base, api.token, api.user);
  return { api, page, ctx, errors, base };
}


describe('watch together across two cluster nodes', () => {
  let alice; // on node 1
  let bob; // on node 2
  let roomId;

  before(async () => {
    alice = await newUserPage(node1.url, `ca_${uniq()}`);
    bob = await newUserPage(node2.url, `cb_${uniq()}`);
    const r = await alice.api.req('POST', '/rooms', { name: `Cluster sync ${uniq()}` });
    roomId = r.room.id;
    await bob.api.req('POST', `/rooms/${roomId}/join`, {}); // through node 2
    await alice.api.req('POST', `/rooms/${roomId}/playlist`, { kind: 'url', url: `${media.url}/clip.m3u8`, title: 'Clip' });
    await alice.page.goto(`${node1.url}/rooms/${roomId}`);
    await bob.page.goto(`${node2.url}/rooms/${roomId}`);
    await alice.page.waitForFunction(() => window.__castmesh.state() !== null);
    await bob.page.waitForFunction(() => window.__castmesh.state() !== null);
  });

  after(async () => {
    await alice?.ctx.close();
    await bob?.ctx.close();
  });

  it('each member sees the other online (presence across nodes)', async () => {
    await alice.page.click('.tab[data-tab=people]');
    await bob.page.click('.tab[data-tab=people]');
    for (const u of [alice, bob]) {
      await waitFor(async () => (await u.page.locator('.member:not(.offline)').count()) === 2, { timeout: 5000, what: 'two members online' });
    }
  });

  it('chat from node 2 reaches node 1', async () => {
    await alice.page.click('.tab[data-tab=chat]');
    await bob.page.click('.tab[data-tab=chat]');
    const text = `hello from node 2 ${uniq()}`;
    await bob.page.fill('input[aria-label="Chat message"]', text);
    await bob.page.press('input[aria-label="Chat message"]', 'Enter');
    await alice.page.waitForFunction((t) => [...document.querySelectorAll('.chat-msg .text')].some((e) => e.textContent === t), text, { timeout: 5000 });
  });

  it('play on node 1 keeps B on node 2 in sync', async () => {
    await alice.page.click('.tab[data-tab=playlist]');
    await alice.page.click('.pl-item >> nth=0 >> .pl-main');
    await waitFor(async () => (await state(bob.page))?.item_id > 0, { what: 'B sees the item selected' });
    if (!(await state(alice.page)).playing) await alice.page.click('button.play-btn');
    await waitFor(async () => (await state(bob.page))?.playing, { what: 'B sees playing' });
    await waitFor(async () => (await local(bob.page))?.t > 2, { timeout: 15_000, what: 'B plays' });
    await waitFor(async () => (await local(alice.page))?.t > 2, { timeout: 15_000, what: 'A plays' });
    await sleep(1500);
    const [a, b] = await Promise.all([local(alice.page), local(bob.page)]);
    assert.ok(!a.paused && !b.paused, 'both playing');
    assert.ok(Math.abs(a.t - b.t) < 0.3, `positions ${a.t} vs ${b.t}`);
  });

  it('pause, seek to 30 s and rate 1.5 by A (node 1) reach B (node 2) within 500 ms', async () => {
    const s = await controlsReachPeer(alice, bob, 'cluster sync (B on node 2)');
    const room = ({ item_id, playing, position_s, rate, version }) => ({ item_id, playing, position_s, rate, version });
    assert.deepEqual(room(await state(alice.page)), room(s), 'A and B hold the same room state');
    await screenshot(bob.page, 'cluster-b-node2-paused-30s');
  });

  it('B (node 2) resumes and A (node 1) follows at rate 1.5', async () => {
    await bob.page.click('button.play-btn');
    await waitFor(async () => { const v = await local(alice.page); return v && !v.paused && v.rate > 1.2; }, { timeout: 5000, what: 'A playing at 1.5' });
    await sleep(1500);
    const [a, b] = await Promise.all([local(alice.page), local(bob.page)]);
    assert.ok(Math.abs(a.t - b.t) < 0.3, `positions ${a.t} vs ${b.t}`);
  });

  it('had no page errors', () => {
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
