import { expect, test } from '@playwright/test';
import { api, hydrated, publish, publishFast, signIn } from './helpers';

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
  await expect(page.locator('tr[data-process="thumbnail"] td[data-col="quality"]')).toHaveText('640×360 25 fps');
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

test('Load more pages through every recording of a stream with 250 of them', async ({ page }) => {
  test.setTimeout(180_000);
  const made = await api('/stream', {
    method: 'POST',
    body: JSON.stringify({
      name: `many-${Date.now()}`,
      processing: { recording: { enabled: true, duration: 1 } },
    }),
  });
  expect(made.status).toBe(201);
  const id = made.body.id;
  // 256 s of media with a keyframe each second, sent at 16× real time: a 1 s recording each.
  const ffmpeg = publishFast(made.body.streamname, 256, 16);
  const exited = new Promise<number>((resolve) => ffmpeg.on('exit', (code) => resolve(code ?? -1)));
  expect(await exited).toBe(0);
  let total = 0;
  await expect
    .poll(async () => {
      const s = (await api(`/stream/${id}`)).body;
      total = s.assetCounts.recording;
      return s.state === 'idle' && total >= 250;
    }, { timeout: 60_000 })
    .toBe(true);

  await signIn(page, `/stream/${id}`);
  await hydrated(page);
  const rows = page.locator('table.recordings tbody tr');
  await expect(rows).toHaveCount(10);
  const shown = page.getByTestId('recordings-shown');
  await expect(shown).toHaveText(`Showing 10 of ${total}`);
  const more = page.getByTestId('recordings-more');
  for (let n = 50; n < total; n += 50) {
    await more.click();
    await expect(rows).toHaveCount(n);
  }
  await more.click();
  await expect(rows).toHaveCount(total);
  await expect(shown).toHaveText(`Showing ${total} of ${total}`);
  await expect(more).toHaveCount(0);
  // Newest first, each recording once, down to the session's first file.
  const indexes = await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute('data-recording'))));
  expect(new Set(indexes).size).toBe(total);
  expect(indexes).toEqual([...indexes].sort((a, b) => b - a));
  const oldest = rows.last().locator('a.url');
  expect((await page.request.get((await oldest.getAttribute('href'))!)).status()).toBe(200);
});
