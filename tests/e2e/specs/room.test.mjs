// Browser tests of the watch-together UI against a real `castmesh serve` (started here on free
// loopback ports with a scratch SQLite database); VOD media is a 90 s HLS clip generated with
// ffmpeg and served by a small CORS-enabled static server on another port.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCastmesh } from '../castmesh.mjs';
import { Api, controlsReachPeer, distExists, launchBrowser, makeMedia, roomState as state, screenshot, signInPage, sleep, startMediaServer, videoOf as local, waitFor } from '../lib.mjs';

const uniq = () => Math.random().toString(36).slice(2, 8);

let server;
let media;
let base;
let mediaBase;
let browser;

before(async () => {
  if (!distExists()) throw new Error('web/dist is missing: run scripts/web-build first');
  media = await startMediaServer(await makeMedia(90));
  mediaBase = media.url;
  server = await startCastmesh();
  base = server.url;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await media?.stop();
});

async function newUserPage(name, viewport = { width: 1280, height: 800 }) {
  const api = new Api(base);
  await api.register(name);
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signInPage(page, base, api.token, api.user);
  return { api, page, ctx, errors };
}


describe('auth', () => {
  it('registers through the form, shows API errors inline, and signs in again', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const name = `u_${uniq()}`;
    await page.goto(`${base}/login`);
    await page.click('text=Create account');
    await page.fill('input[name=username]', name);
    await page.fill('input[name=password]', 'correct-horse-battery');
    await page.fill('input[name=confirm]', 'correct-horse-battery');
    await page.click('button[type=submit]');
    await page.waitForSelector('h1:has-text("Rooms")');
    const token = await page.evaluate(() => localStorage.getItem('castmesh.token'));
    assert.ok(token && token.length > 10, 'token stored');

    // Same name again: the server's conflict is shown in the form.
    await page.click('button[title="Sign out"]');
    await page.waitForURL(/\/login/);
    await page.click('text=Create account');
    await page.fill('input[name=username]', name);
    await page.fill('input[name=password]', 'correct-horse-battery');
    await page.fill('input[name=confirm]', 'correct-horse-battery');
    await page.click('button[type=submit]');
    await page.waitForSelector('.alert');
    assert.match(await page.textContent('.alert'), /taken/i);

    await page.click('.tab:has-text("Sign in")');
    await page.fill('input[name=username]', name);
    await page.fill('input[name=password]', 'wrong-password!');
    await page.click('button[type=submit]');
    await page.waitForSelector('.alert');
    assert.match(await page.textContent('.alert'), /wrong username or password/i);
    await page.fill('input[name=password]', 'correct-horse-battery');
    await page.click('button[type=submit]');
    await page.waitForSelector('h1:has-text("Rooms")');
    await ctx.close();
  });
});

describe('room', () => {
  let alice;
  let bob;
  let carol;
  let roomId;

  before(async () => {
    alice = await newUserPage(`alice_${uniq()}`);
    bob = await newUserPage(`bob_${uniq()}`);
    const r = await alice.api.req('POST', '/rooms', { name: `Sync <i>test</i> ${uniq()}`, allow_guests: true });
    roomId = r.room.id;
    await bob.api.req('POST', `/rooms/${roomId}/join`, {});
    await alice.page.goto(`${base}/rooms/${roomId}`);
    await bob.page.goto(`${base}/rooms/${roomId}`);
    await alice.page.waitForFunction(() => window.__castmesh.state() !== null);
    await bob.page.waitForFunction(() => window.__castmesh.state() !== null);
  });

  after(async () => {
    await alice?.ctx.close();
    await bob?.ctx.close();
  });

  it('renders the room name as text', async () => {
    const h1 = await alice.page.textContent('.room-header h1');
    assert.match(h1, /Sync <i>test<\/i>/);
    assert.equal(await alice.page.locator('.room-header h1 i').count(), 0);
  });

  it('chat is delivered to everyone and rendered as text', async () => {
    const text = `<img src=x onerror="window.__pwned=1"> hi ${uniq()}`;
    await bob.page.fill('input[aria-label="Chat message"]', text);
    await bob.page.press('input[aria-label="Chat message"]', 'Enter');
    await alice.page.waitForSelector(`.chat-msg .text >> text=${text.slice(-6)}`);
    const shown = await alice.page.locator('.chat-msg .text').last().textContent();
    assert.equal(shown, text);
    assert.equal(await alice.page.locator('.chat-list img').count(), 0);
    assert.equal(await alice.page.evaluate(() => window.__pwned), undefined);
  });

  it('playlist add from the UI reaches the other member', async () => {
    await alice.page.click('.tab[data-tab=playlist]');
    await alice.page.fill('input[aria-label="Video address"]', `${mediaBase}/clip.m3u8?a`);
    await alice.page.fill('input[aria-label="Title"]', 'Clip A');
    await alice.page.click('form.pl-add button[type=submit]');
    await alice.page.fill('input[aria-label="Video address"]', `${mediaBase}/clip.m3u8?b`);
    await alice.page.fill('input[aria-label="Title"]', 'Clip B');
    await alice.page.click('form.pl-add button[type=submit]');
    await bob.page.click('.tab[data-tab=playlist]');
    await bob.page.waitForSelector('.pl-item >> nth=1');
    const titles = await bob.page.locator('.pl-title').allTextContents();
    assert.deepEqual(titles, ['Clip A', 'Clip B']);
  });

  it('reorders with the move buttons', async () => {
    await alice.page.click('.pl-item >> nth=1 >> button[aria-label="Move up"]');
    await bob.page.waitForFunction(() => document.querySelector('.pl-title')?.textContent === 'Clip B');
    await alice.page.click('.pl-item >> nth=1 >> button[aria-label="Move up"]');
    await bob.page.waitForFunction(() => document.querySelector('.pl-title')?.textContent === 'Clip A');
  });

  it('reorders by drag and drop', async () => {
    const first = alice.page.locator('.pl-item').nth(0);
    const second = alice.page.locator('.pl-item').nth(1);
    await second.dragTo(first, { targetPosition: { x: 40, y: 4 } });
    await bob.page.waitForFunction(() => document.querySelector('.pl-title')?.textContent === 'Clip B');
    await alice.page.locator('.pl-item').nth(0).dragTo(alice.page.locator('.pl-item').nth(1), { targetPosition: { x: 40, y: 40 } });
    await bob.page.waitForFunction(() => document.querySelector('.pl-title')?.textContent === 'Clip A');
  });

  it('play keeps both members in sync', async () => {
    await alice.page.click('.pl-item >> nth=0 >> .pl-main');
    await waitFor(async () => (await state(bob.page))?.item_id > 0, { what: 'item selected' });
    await alice.page.click('button.play-btn');
    await waitFor(async () => (await state(bob.page))?.playing, { what: 'bob sees playing' });
    await waitFor(async () => (await local(bob.page))?.t > 2, { timeout: 15_000, what: 'bob plays' });
    await waitFor(async () => (await local(alice.page))?.t > 2, { timeout: 15_000, what: 'alice plays' });
    await sleep(1500);
    const [a, b] = await Promise.all([local(alice.page), local(bob.page)]);
    assert.ok(!a.paused && !b.paused, 'both playing');
    assert.ok(Math.abs(a.t - b.t) < 0.3, `positions ${a.t} vs ${b.t}`);
    const drift = await bob.page.evaluate(() => window.__castmesh.drift());
    assert.ok(Math.abs(drift) < 0.3, `drift ${drift}`);
  });

  it('pause, seek to 30 s and rate 1.5 by A reach B within 500 ms', async () => {
    await controlsReachPeer(alice, bob, 'sync');
    await screenshot(bob.page, 'room-b-paused-30s');
  });

  it('a third member joining late lands within 0.5 s of the others', async () => {
    await alice.page.click('button.play-btn');
    await waitFor(async () => { const [a, b] = await Promise.all([local(alice.page), local(bob.page)]); return !a.paused && !b.paused; }, { what: 'A and B playing' });
    carol = await newUserPage(`carol_${uniq()}`);
    await carol.api.req('POST', `/rooms/${roomId}/join`, {});
    const joined = Date.now();
    await carol.page.goto(`${base}/rooms/${roomId}`);
    await carol.page.waitForFunction(() => window.__castmesh.state() !== null);
    // Position of every page at one common instant: each reports (currentTime, Date.now()).
    const snap = (p) => p.evaluate(() => { const v = window.__castmesh.player; return v ? { t: v.currentTime, at: Date.now(), rate: v.playbackRate, paused: v.paused, ready: v.readyState } : null; });
    const apart = async () => {
      const xs = await Promise.all([alice, bob, carol].map((u) => snap(u.page)));
      if (xs.some((x) => !x || x.paused || x.ready < 3)) return null;
      const T = Math.max(...xs.map((x) => x.at));
      const pos = xs.map((x) => x.t + ((T - x.at) / 1000) * x.rate);
      return { pos, gap: Math.max(Math.abs(pos[2] - pos[0]), Math.abs(pos[2] - pos[1])) };
    };
    const r = await waitFor(async () => { const x = await apart(); return x && x.gap <= 0.5 ? x : null; }, { timeout: 15_000, interval: 200, what: 'late joiner within 0.5 s' });
    console.log(`late joiner: within ${r.gap.toFixed(3)} s of the others ${Date.now() - joined} ms after opening the room (positions ${r.pos.map((p) => p.toFixed(3)).join(', ')})`);
    // And it stays there.
    await sleep(1000);
    const again = await apart();
    assert.ok(again && again.gap <= 0.5, `late joiner drifted: ${JSON.stringify(again)}`);
    console.log(`late joiner 1 s later: ${again.gap.toFixed(3)} s`);
    await screenshot(carol.page, 'room-late-joiner');
  });

  it('a member without permission gets an error and the state is unchanged', async () => {
    await alice.api.req('PATCH', `/rooms/${roomId}/members/${carol.api.user.id}`, { revoke: ['control_playback', 'seek'] });
    await sleep(300);
    const before = await state(alice.page);
    await carol.page.evaluate(() => window.__castmesh.engine.pause());
    await carol.page.waitForSelector('.toast-error >> text=/permission/i', { timeout: 5000 });
    await carol.page.evaluate(() => window.__castmesh.engine.seek(3));
    await sleep(700);
    const [a, c] = await Promise.all([state(alice.page), state(carol.page)]);
    assert.equal(a.version, before.version, 'version unchanged');
    assert.equal(a.playing, true);
    assert.equal(c.version, before.version);
    assert.ok((await local(alice.page)).t > 10, 'A still playing near where it was');
    await screenshot(carol.page, 'room-forbidden');
    await carol.ctx.close();
  });

  it('chat with a script tag shows as text', async () => {
    const text = '<script>alert(1)</script>';
    let dialog = false;
    alice.page.on('dialog', (d) => { dialog = true; d.dismiss(); });
    bob.page.on('dialog', (d) => { dialog = true; d.dismiss(); });
    await alice.page.click('.tab[data-tab=chat]');
    await bob.page.click('.tab[data-tab=chat]');
    await alice.page.fill('input[aria-label="Chat message"]', text);
    await alice.page.press('input[aria-label="Chat message"]', 'Enter');
    await bob.page.waitForFunction((t) => [...document.querySelectorAll('.chat-msg .text')].some((e) => e.textContent === t), text);
    assert.equal(await bob.page.locator('.chat-list script').count(), 0);
    await sleep(300);
    assert.equal(dialog, false, 'no alert ran');
    await screenshot(bob.page, 'room-chat');
  });

  it('back to normal speed, paused', async () => {
    await alice.page.selectOption('select[aria-label="Speed"]', '1');
    await waitFor(async () => (await state(bob.page)).rate === 1, { what: 'bob rate 1' });
    if ((await state(alice.page)).playing) await alice.page.click('button.play-btn');
    await waitFor(async () => (await local(bob.page))?.paused, { what: 'bob paused' });
  });

  it('pause and seek by one member move the other', async () => {
    await bob.page.click('button.play-btn'); // bob plays
    await waitFor(async () => !(await local(alice.page))?.paused, { what: 'alice playing' });
    await sleep(1000);
    await bob.page.click('button.play-btn'); // bob pauses
    await waitFor(async () => (await local(alice.page))?.paused, { what: 'alice paused' });
    const [a, b] = await Promise.all([local(alice.page), local(bob.page)]);
    assert.ok(Math.abs(a.t - b.t) < 0.1, `paused at ${a.t} vs ${b.t}`);

    // Seek through the protocol hook the slider uses.
    await alice.page.evaluate(() => window.__castmesh.engine.seek(12));
    await waitFor(async () => Math.abs((await local(bob.page)).t - 12) < 0.1, { what: 'bob at 12 s' });
    const s = await state(bob.page);
    assert.equal(s.position_s, 12);
    assert.equal(s.playing, false);
  });

  it('a stale command adopts the server state instead of applying', async () => {
    const before = await state(alice.page);
    // Bob changes the state; alice then sends with her old version on purpose.
    await bob.page.evaluate(() => window.__castmesh.engine.seek(5));
    await waitFor(async () => (await state(alice.page)).version > before.version, { what: 'alice sees new version' });
    const v = (await state(alice.page)).version;
    await alice.page.evaluate((old) => {
      const e = window.__castmesh.engine;
      e.state.version = old; // pretend she missed bob's change
      e.seek(9);
    }, before.version);
    await waitFor(async () => (await state(alice.page)).version === v, { what: 'alice adopts server state' });
    const s = await state(alice.page);
    assert.equal(s.position_s, 5);
    assert.equal((await state(bob.page)).position_s, 5);
  });

  it('rate changes reach everyone', async () => {
    await alice.page.selectOption('select[aria-label="Speed"]', '1.5');
    await waitFor(async () => (await state(bob.page)).rate === 1.5, { what: 'bob rate 1.5' });
    await alice.page.selectOption('select[aria-label="Speed"]', '1');
    await waitFor(async () => (await state(bob.page)).rate === 1, { what: 'bob rate 1' });
  });

  it('auto-advances to the next item when the current one ends', async () => {
    const first = (await state(alice.page)).item_id;
    await alice.page.evaluate(() => window.__castmesh.engine.seek(87.5));
    await waitFor(async () => (await state(alice.page)).position_s === 87.5, { what: 'seeked' });
    await alice.page.click('button.play-btn');
    await waitFor(async () => {
      const s = await state(bob.page);
      return s.item_id !== first && s.item_id > 0;
    }, { timeout: 20_000, what: 'next item' });
    const cur = await bob.page.locator('.pl-item.current .pl-title').textContent();
    assert.equal(cur, 'Clip B');
  });

  it('shows presence of both members', async () => {
    await alice.page.click('.tab[data-tab=people]');
    await alice.page.waitForSelector('.member >> nth=1');
    const online = await alice.page.locator('.member:not(.offline)').count();
    assert.equal(online, 2);
  });

  it('a guest joins with a name only and cannot control playback', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${base}/rooms/${roomId}`);
    await page.click('text=Join as guest');
    await page.fill('dialog input', `guest_${uniq()}`);
    await page.click('dialog button[type=submit]');
    await page.waitForFunction(() => window.__castmesh.state() !== null);
    assert.equal(await page.locator('button.play-btn').isDisabled(), true);
    await page.fill('input[aria-label="Chat message"]', 'hello from a guest');
    await page.press('input[aria-label="Chat message"]', 'Enter');
    await alice.page.click('.tab[data-tab=chat]');
    await alice.page.waitForSelector('.chat-msg .text >> text=hello from a guest');
    await ctx.close();
  });

  it('had no page errors', () => {
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
