import { expect, test } from '@playwright/test';
import { api, hydrated, publish, signIn } from './helpers';

test('rewatch a finished session, cut a clip on the timeline, share it with a signed-out browser', async ({ page, browser }) => {
  test.setTimeout(120_000);
  const made = await api('/stream', {
    method: 'POST',
    body: JSON.stringify({ name: `clip-${Date.now()}`, processing: { replay: { enabled: true, duration: null } } }),
  });
  expect(made.status).toBe(201);
  const id = made.body.id;
  const code = await new Promise<number>((resolve) =>
    publish(made.body.streamname, 12, '640x360').on('exit', (c) => resolve(c ?? -1)));
  expect(code).toBe(0);
  await expect
    .poll(async () => (await api(`/stream/${id}`)).body.playout.replay[0]?.endedAt ?? null, { timeout: 20_000 })
    .not.toBeNull();
  const session = (await api(`/stream/${id}`)).body.playout.replay[0].sessionId;

  // From the stream overview to the rewatch page's Clip & Share.
  await signIn(page, `/stream/${id}`);
  await hydrated(page);
  await page.getByTestId('clip-latest').click();
  await page.waitForURL((u) => u.pathname === `/replay/${session}`);
  await hydrated(page);
  await expect(page.getByTestId('replay-state')).toHaveText('ended');

  // The player knows the session clock and the timeline spans the session.
  const video = page.locator('video[data-replay]');
  await expect(video).toHaveAttribute('data-session-offset', /^-?\d+\.\d+$/, { timeout: 20_000 });
  await expect
    .poll(() => page.getByTestId('clip-out-handle').evaluate((e) => Number((e as HTMLInputElement).max)), { timeout: 20_000 })
    .toBeGreaterThan(10);

  // In point typed into its field; out point set from the playhead while the session plays.
  await page.getByTestId('clip-in').fill('2');
  await page.getByTestId('clip-in').blur();
  await video.evaluate((v) => { const m = v as HTMLVideoElement; m.muted = true; m.currentTime = 5.5; return m.play(); });
  await expect
    .poll(async () => Number((await page.getByTestId('clip-playhead').textContent())?.split(':').pop()), { timeout: 15_000 })
    .toBeGreaterThan(6);
  await page.getByTestId('set-out').click();
  const out = Number(await page.getByTestId('clip-out').inputValue());
  expect(out).toBeGreaterThan(6);
  expect(out).toBeLessThan(12.5);
  await expect(page.getByTestId('clip-in')).toHaveValue('2.0');
  // The drag handles follow the fields.
  await expect.poll(() => page.getByTestId('clip-in-handle').evaluate((e) => Number((e as HTMLInputElement).value))).toBeCloseTo(2, 1);

  // For people reviewing the page: what the editor looks like with a selection.
  await page.screenshot({ path: 'test-results/clip-editor.png', fullPage: true });
  await page.getByTestId('clip-title').fill('Best moment');
  await page.getByTestId('clip-create').click();
  const link = page.getByTestId('clip-share-url');
  await expect(link).toBeVisible({ timeout: 20_000 });
  const shareUrl = (await link.getAttribute('href'))!;
  expect(shareUrl).toMatch(/\/clip\/[0-9a-f-]+$/);
  await expect(page.getByTestId('clip-list').locator('tbody tr')).toHaveCount(1);

  // The API lists it with the chosen span.
  const clips = await api(`/replay/${session}/clips`);
  expect(clips.body.clips).toHaveLength(1);
  expect(clips.body.clips[0].start).toBeCloseTo(2, 2);
  expect(clips.body.clips[0].duration).toBeCloseTo(out - 2, 0);

  // Link previews get Open Graph tags in the first response.
  const html = await (await fetch(shareUrl)).text();
  expect(html).toContain('property="og:video"');
  expect(html).toContain('property="og:title"');

  // A fresh browser without cookies opens the share link and the clip plays.
  const guest = await browser.newContext();
  const viewer = await guest.newPage();
  await viewer.goto(shareUrl);
  await expect(viewer.getByTestId('clip-title')).toHaveText('Best moment');
  await viewer.screenshot({ path: 'test-results/clip-share.png', fullPage: true });
  const clipVideo = viewer.getByTestId('clip-video');
  await clipVideo.evaluate((v) => { const m = v as HTMLVideoElement; m.muted = true; return m.play(); });
  await expect
    .poll(() => clipVideo.evaluate((v) => (v as HTMLVideoElement).currentTime), { timeout: 15_000 })
    .toBeGreaterThan(1);
  expect(await clipVideo.evaluate((v) => (v as HTMLVideoElement).error)).toBeNull();

  // The session's public replay page, from the stream page's viewer link: it plays signed out.
  await page.goto(`/stream/${id}`);
  await hydrated(page);
  const watchUrl = (await page.getByTestId('replay-watch').first().getAttribute('href'))!;
  expect(watchUrl).toMatch(new RegExp(`/watch/replay/${session}$`));
  await viewer.goto(watchUrl);
  await expect(viewer.getByTestId('state')).toHaveText('replay');
  const replayVideo = viewer.locator('video[data-replay]');
  await expect
    .poll(() => replayVideo.evaluate((v) => (v as HTMLVideoElement).currentTime), { timeout: 20_000 })
    .toBeGreaterThan(1);
  expect(await viewer.evaluate(() => document.querySelector('header nav a[href="/streams/new"]'))).toBeNull();
  await viewer.screenshot({ path: 'test-results/watch-replay.png', fullPage: true });
  await guest.close();
});
