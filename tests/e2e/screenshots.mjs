// Renders every page of the UI against the mock server and saves PNGs for a visual review.
//   node screenshots.mjs [OUT_DIR]     (default /tmp/castmesh-shots)

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Api, launchBrowser, makeMedia, signInPage, sleep, startMock } from './lib.mjs';

const out = process.argv[2] ?? '/tmp/castmesh-shots';
mkdirSync(out, { recursive: true });

const media = await makeMedia(40);
const mock = await startMock({ media, streams: 'live/cam1,live/studio-b' });
const browser = await launchBrowser();
try {
  const base = mock.url;
  const shot = async (page, name) => {
    await sleep(400);
    await page.screenshot({ path: join(out, `${name}.png`) });
    console.log(`saved ${name}.png`);
  };
  const desktop = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await desktop.newPage();
  page.on('pageerror', (e) => console.error('pageerror', e.message));

  await page.goto(`${base}/login`);
  await shot(page, '01-login');
  await page.click('text=Create account');
  await page.fill('input[name=username]', 'al');
  await page.fill('input[name=password]', 'short');
  await page.click('button[type=submit]');
  await shot(page, '02-register-error');

  await page.fill('input[name=username]', 'alice');
  await page.fill('input[name=password]', 'correct-horse-battery');
  await page.fill('input[name=confirm]', 'correct-horse-battery');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=No rooms yet');
  await shot(page, '03-rooms-empty');

  await page.click('text=New room');
  await page.fill('dialog input >> nth=0', 'Friday movie night');
  await shot(page, '04-create-room');
  await page.click('dialog button[type=submit]');
  await page.waitForURL(/\/rooms\//);
  await page.waitForSelector('.tab[data-tab=playlist]');
  await shot(page, '05-room-empty');

  // Fill the playlist through the UI.
  await page.click('.tab[data-tab=playlist]');
  await page.fill('input[aria-label="Video address"]', `${base}/media/clip.m3u8`);
  await page.fill('input[aria-label="Title"]', 'Test pattern (HLS)');
  await page.click('form.pl-add button[type=submit]');
  await page.fill('input[aria-label="Video address"]', `${base}/media/clip.mp4`);
  await page.fill('input[aria-label="Title"]', 'Test pattern <b>MP4</b>');
  await page.click('form.pl-add button[type=submit]');
  await page.selectOption('select[aria-label="Live stream"]', 'live/cam1');
  await page.click('text=Add live');
  await page.waitForSelector('.pl-item >> nth=2');
  await shot(page, '06-room-playlist');

  await page.click('.pl-item >> nth=0 >> .pl-main');
  await page.waitForFunction(() => window.__castmesh.state()?.item_id > 0);
  await page.click('button.play-btn');
  await page.waitForFunction(() => window.__castmesh.player && window.__castmesh.player.currentTime > 1, null, { timeout: 15000 });

  // A second user joins and chats.
  const bobApi = new Api(base);
  await bobApi.register('bob');
  const roomId = page.url().split('/rooms/')[1];
  await bobApi.req('POST', `/rooms/${roomId}/join`, {});
  const bobCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const bob = await bobCtx.newPage();
  await signInPage(bob, base, bobApi.token, bobApi.user);
  await bob.goto(`${base}/rooms/${roomId}`);
  await bob.waitForSelector('input[aria-label="Chat message"]:not([disabled])');
  await bob.fill('input[aria-label="Chat message"]', 'hey! <script>alert(1)</script> is this synced?');
  await bob.press('input[aria-label="Chat message"]', 'Enter');
  await page.click('.tab[data-tab=chat]');
  await page.fill('input[aria-label="Chat message"]', 'Yes — drift is under 50 ms here 🎉');
  await page.press('input[aria-label="Chat message"]', 'Enter');
  await sleep(3000);
  await shot(page, '07-room-playing-chat');
  await shot(bob, '08-room-bob');

  await page.click('.tab[data-tab=people]');
  await shot(page, '09-room-people');
  await page.click('.member[data-user-id] button[aria-label^="Manage"]');
  await shot(page, '10-member-menu');
  await page.click('text=Permissions…');
  await shot(page, '11-permissions');
  await page.keyboard.press('Escape');

  await page.click('.tab[data-tab=settings]');
  await sleep(300);
  await shot(page, '12-room-settings');

  // Rooms list with a few rooms.
  const api = new Api(base);
  await api.register('carol');
  await api.req('POST', '/rooms', { name: 'Lo-fi beats to study to', allow_guests: true });
  await api.req('POST', '/rooms', { name: 'Private screening', password: 'secret-pass' });
  await page.goto(`${base}/`);
  await page.waitForSelector('.room-card >> nth=2');
  await shot(page, '13-rooms');

  await page.goto(`${base}/live`);
  await page.waitForSelector('.stream-row');
  await shot(page, '14-live');

  // Anonymous visitor opening a room link.
  const anonCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const anon = await anonCtx.newPage();
  await anon.goto(`${base}/rooms/${roomId}`);
  await anon.waitForSelector('.center-card');
  await shot(anon, '15-join-anon');

  // Mobile.
  const mobileCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const mobile = await mobileCtx.newPage();
  await signInPage(mobile, base, bobApi.token, bobApi.user);
  await mobile.goto(`${base}/rooms/${roomId}`);
  await mobile.waitForSelector('.tab[data-tab=chat]');
  await sleep(1000);
  await shot(mobile, '16-mobile-room');
  await mobile.goto(`${base}/`);
  await mobile.waitForSelector('.room-card');
  await shot(mobile, '17-mobile-rooms');
} finally {
  await browser.close();
  await mock.stop();
}
