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
});
