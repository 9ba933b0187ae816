import { expect, test } from '@playwright/test';
import { api, hydrated, publish, signIn } from './helpers';

test('asset URLs are shown and copyable; recordings are a table with downloads', async ({ page, context }) => {
  test.setTimeout(90_000);
  const made = await api('/stream', {
    method: 'POST',
    body: JSON.stringify({
      name: `assets-${Date.now()}`,
      processing: { thumbnail: { enabled: true, interval: 10 }, recording: { enabled: true } },
    }),
  });
  expect(made.status).toBe(201);
  const id = made.body.id;
  const ffmpeg = publish(made.body.streamname, 4, '640x360');
  const exited = new Promise<number>((resolve) => ffmpeg.on('exit', (code) => resolve(code ?? -1)));
  expect(await exited).toBe(0);
  await expect
    .poll(async () => {
      const s = (await api(`/stream/${id}`)).body;
      const vods = s.playout.web.filter((w: any) => w.type === 'vod' && w.status === 'ready');
      return s.state === 'idle' && s.assetCounts.thumbnail > 0 && vods.length > 0;
    }, { timeout: 20_000 })
    .toBe(true);

  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await signIn(page, `/stream/${id}`);
  await hydrated(page);
  // Idle, the preview is the last session's, with its time.
  await expect(page.getByTestId('thumbnail-time')).toHaveText(/ · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
  // Quality is what the last session really was, not the profile's name.
  await expect(page.locator('tr[data-process="thumbnail"] td[data-col="quality"]')).toHaveText('640×360');
  // The thumbnail row's URL column: the stable latest URL, which serves the newest picture.
  const latest = page.getByTestId('thumbnail-latest-url');
  await expect(latest).toContainText(`/assets/${id}/thumbnail/latest.jpg`);
  await page.getByRole('button', { name: 'Copy the latest Thumbnail URL' }).click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toBe(await latest.textContent());
  const image = await page.request.get(copied);
  expect(image.status()).toBe(200);
  expect(image.headers()['content-type']).toContain('image/jpeg');
  // The row expands to the process's resource links: the latest URL and the history.
  await page.getByText('Thumbnail resource links').click();
  const links = page.locator('tr[data-resources="thumbnail"] ul.links a');
  await expect(links.first()).toHaveText(copied);
  expect(await links.count()).toBeGreaterThan(1);
  // Recordings: date, file (link, copy, download), duration and size.
  const recording = page.locator('table.recordings tbody tr').first();
  await expect(recording.getByRole('link', { name: 'Download' })).toHaveAttribute('download', '');
  await expect(recording.locator('td').nth(2)).toHaveText(/^\d+\.\d s$/);
  await expect(recording.locator('td').nth(3)).toHaveText(/MB$/);
  await page.screenshot({ path: 'test-results/stream-overview.png', fullPage: true });
  const file = await recording.locator('a.url').getAttribute('href');
  expect((await page.request.get(file!)).status()).toBe(200);
});
