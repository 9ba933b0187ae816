import { expect, test } from '@playwright/test';
import { api, baseURL, publish } from './helpers';

test('a viewer without an account watches live, and the embed plays inside an iframe', async ({ browser }) => {
  test.setTimeout(90_000);
  const made = await api('/stream', { method: 'POST', body: JSON.stringify({ name: `public-${Date.now()}` }) });
  expect(made.status).toBe(201);
  const id = made.body.id;
  // The stream object points viewers at the public page.
  expect(made.body.playout.web[0].url).toBe(`${baseURL}/watch/${id}`);

  const viewer = await browser.newContext(); // signed out
  const page = await viewer.newPage();
  await page.goto(`/watch/${id}`);
  await expect(page).toHaveURL(new RegExp(`/watch/${id}$`));
  await expect(page.getByTestId('watch-title')).toHaveText(made.body.name);
  await expect(page.getByTestId('state')).toHaveText('idle');

  const ffmpeg = publish(made.body.streamname, 25, '640x360');
  const exited = new Promise<number>((resolve) => ffmpeg.on('exit', (code) => resolve(code ?? -1)));
  try {
    await expect(page.getByTestId('state')).toHaveText('live', { timeout: 15_000 });
    await expect
      .poll(() => page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime), { timeout: 20_000 })
      .toBeGreaterThan(1);
    await page.screenshot({ path: 'test-results/watch.png' });

    // A plain HTML page with the embed in an iframe: the video alone, playing.
    const host = await viewer.newPage();
    await host.setContent(
      `<html><body><h1>A partner's page</h1><iframe id="player" src="${baseURL}/embed/${id}" width="640" height="360"></iframe></body></html>`,
    );
    await expect.poll(() => host.frames().some((f) => f.url().includes(`/embed/${id}`)), { timeout: 10_000 }).toBe(true);
    const frame = host.frames().find((f) => f.url().includes(`/embed/${id}`))!;
    await expect
      .poll(() => frame.evaluate(() => (document.querySelector('video') as HTMLVideoElement | null)?.currentTime ?? 0), { timeout: 20_000 })
      .toBeGreaterThan(1);
    expect(await frame.evaluate(() => document.querySelector('header, nav') === null)).toBe(true);
    await host.screenshot({ path: 'test-results/embed.png' });
  } finally {
    expect(await exited).toBe(0);
  }
  await viewer.close();
});
