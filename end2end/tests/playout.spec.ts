import { expect, test } from '@playwright/test';
import { api, hydrated, publish, signIn } from './helpers';

test('the player follows the stream live, plays it near the live edge, then shows idle', async ({ page }) => {
  test.setTimeout(90_000);
  const made = await api('/stream', { method: 'POST', body: JSON.stringify({ name: `player-${Date.now()}` }) });
  expect(made.status).toBe(201);
  await signIn(page, `/playout/${made.body.id}`);
  await hydrated(page);
  await expect(page.getByTestId('state')).toHaveText('idle');

  const ffmpeg = publish(made.body.streamname, 22);
  const exited = new Promise<number>((resolve) => ffmpeg.on('exit', (code) => resolve(code ?? -1)));
  try {
    // The page polls: it turns live without a reload, and the video starts.
    await expect(page.getByTestId('state')).toHaveText('live', { timeout: 15_000 });
    await expect
      .poll(() => page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime), { timeout: 20_000 })
      .toBeGreaterThan(2);

    // How far behind real time the picture is: now minus the ingest time of the frame on
    // screen (EXT-X-PROGRAM-DATE-TIME). Encoder delay on the publisher is not included.
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      await page.waitForTimeout(1000);
      const ms = await page.evaluate(() => {
        const p = (window as any).liveprocPlayer;
        return p && p.playingDate ? Date.now() - p.playingDate.getTime() : null;
      });
      if (ms !== null) samples.push(ms);
    }
    expect(samples.length).toBeGreaterThan(0);
    samples.sort((a, b) => a - b);
    const median = samples[Math.floor(samples.length / 2)];
    console.log(`ingest-to-display latency: median ${(median / 1000).toFixed(2)} s over ${samples.length} samples`);
    expect(median).toBeLessThan(8000);
  } finally {
    expect(await exited).toBe(0);
  }
  await expect(page.getByTestId('state')).toHaveText('idle', { timeout: 15_000 });
  // The playout overview also shows the live processing view, read only.
  const lp = page.locator('section.live-processing');
  await expect(lp.locator('tr[data-process="recording"]')).toBeVisible();
  await expect(lp.getByRole('heading', { name: 'Recordings' })).toBeVisible();
  await expect(lp.getByRole('button', { name: 'Edit options' })).toHaveCount(0);
  await page.screenshot({ path: 'test-results/playout-overview.png', fullPage: true });
});

test('a stream group with renditions: the player switches quality from the menu', async ({ page }) => {
  test.setTimeout(90_000);
  const made = await api('/stream', {
    method: 'POST',
    body: JSON.stringify({ name: `ladder-${Date.now()}`, transcoding: { profiles: ['360p', '240p'] } }),
  });
  expect(made.status).toBe(201);
  await signIn(page, `/playout/${made.body.id}`);
  await hydrated(page);

  const ffmpeg = publish(made.body.streamname, 30, '854x480');
  const exited = new Promise<number>((resolve) => ffmpeg.on('exit', (code) => resolve(code ?? -1)));
  const video = page.locator('video');
  const height = () => video.evaluate((v: HTMLVideoElement) => v.videoHeight);
  try {
    await expect(page.getByTestId('state')).toHaveText('live', { timeout: 15_000 });
    // The group's ABR playlist: source, 360p and 240p in the menu (hls.js orders them by
    // bandwidth; 240p of an 854-wide source is 428 wide, the nearest even width).
    const menu = page.getByTestId('quality');
    await expect(menu).toBeVisible({ timeout: 20_000 });
    await expect
      .poll(async () => (await menu.locator('option').allTextContents()).sort().join(' | '), { timeout: 20_000 })
      .toBe('240p · 428×240 | 360p · 640×360 | Auto | source · 854×480');
    await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 20_000 }).toBeGreaterThan(1);

    await menu.selectOption({ label: '240p · 428×240' });
    await expect.poll(height, { timeout: 20_000 }).toBe(240);
    await expect(page.getByTestId('quality-now')).toContainText('240p');
    await menu.selectOption({ label: 'source · 854×480' });
    await expect.poll(height, { timeout: 20_000 }).toBe(480);
    // Playback goes on after switching.
    const t = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
    await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { timeout: 10_000 }).toBeGreaterThan(t + 1);
  } finally {
    ffmpeg.kill('SIGINT');
    await exited;
  }
});
