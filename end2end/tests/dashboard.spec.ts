import { expect, test } from '@playwright/test';
import { api, hydrated, publish, signIn } from './helpers';

test('signed-out visitors are sent to sign in; a wrong key is refused', async ({ page }) => {
  await page.goto('/stream/whatever');
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByLabel('API key').fill('not-a-key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('not valid');
});

test('create a stream with two profiles, sync, summary, then edit through the dialog', async ({ page }) => {
  await signIn(page, '/streams/new');
  await hydrated(page);
  const name = `e2e-${Date.now()}`;
  await page.locator('#name').fill(name);
  await page.getByRole('checkbox', { name: /720p/ }).check();
  await page.getByRole('checkbox', { name: /360p/ }).check();
  await expect(page.getByRole('tab')).toHaveText(['passthrough', '720p', '360p']);

  // Settings per profile: thumbnails on passthrough, replay on 360p.
  await page.locator('#profile-passthrough-thumbnail-enabled').check();
  await page.locator('#profile-passthrough-thumbnail-interval').fill('15');
  await page.getByRole('tab', { name: '360p' }).click();
  await page.locator('#profile-360p-replay-enabled').check();
  await page.locator('#profile-360p-replay-duration').fill('120');

  // A range error shows next to its field.
  await page.locator('#profile-360p-motionclip-duration').fill('61');
  await expect(page.locator('#profile-360p-motionclip-duration-error')).toContainText('motionclip.duration must be between 1 and 60');
  await page.locator('#profile-360p-motionclip-duration').fill('5');
  await expect(page.locator('#profile-360p-motionclip-duration-error')).toBeEmpty();

  const summary = page.getByRole('complementary', { name: 'Summary' });
  await expect(summary.locator('li[data-profile="passthrough"]')).toContainText('Thumbnail every 15 s');
  await expect(summary.locator('li[data-profile="360p"]')).toContainText('Replay: 120 s');
  await expect(summary.locator('li[data-profile="720p"]')).toContainText('no live processing');

  // Sync settings across profiles: the 360p tab's settings go to every profile.
  await page.getByRole('button', { name: 'Sync settings across profiles' }).click();
  for (const p of ['passthrough', '720p', '360p']) {
    await expect(summary.locator(`li[data-profile="${p}"]`)).toContainText('Replay: 120 s');
    await expect(summary.locator(`li[data-profile="${p}"]`)).not.toContainText('Thumbnail');
  }
  // Then one profile differs again.
  await page.getByRole('tab', { name: '720p' }).click();
  await page.locator('#profile-720p-thumbnail-enabled').check();
  await expect(summary.locator('li[data-profile="720p"]')).toContainText('Thumbnail every 10 s');

  await page.getByRole('button', { name: 'Create stream' }).click();
  await page.waitForURL(/\/stream\/[0-9a-f-]+$/);
  const id = page.url().split('/').pop()!;
  await hydrated(page);
  await expect(page.getByRole('heading', { name })).toBeVisible();
  await expect(page.getByTestId('ingest-url')).toContainText('rtmp://');
  await expect(page.getByTestId('ingest-url')).toHaveText(/\/live$/);
  await expect(page.getByTestId('ingest-rec-url')).toHaveText(/^rtmp:\/\/.*\/rec$/);

  const section = page.locator('section.live-processing');
  await expect(section.getByRole('tab')).toHaveText(['passthrough', '720p', '360p']);
  const replayRow = section.locator('tr[data-process="replay"]');
  await expect(replayRow).toContainText('Active');
  await expect(replayRow.locator('td[data-col="duration"]')).toHaveText('120');
  await section.getByRole('tab', { name: '720p' }).click();
  await expect(section.locator('tr[data-process="thumbnail"]')).toContainText('Active');

  // Edit through the dialog: nothing changes before Confirm.
  await section.getByRole('button', { name: 'Edit options' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('next ingest');
  await dialog.getByRole('tab', { name: '360p' }).click();
  await dialog.locator('#edit-360p-replay-duration').fill('0');
  await expect(dialog.locator('#edit-360p-replay-duration-error')).toContainText('replay.duration must be at least 1');
  await expect(dialog.getByRole('button', { name: 'Confirm' })).toBeDisabled();
  await dialog.locator('#edit-360p-replay-duration').fill('240');
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(dialog).toHaveCount(0);
  await section.getByRole('tab', { name: '360p' }).click();
  await expect(section.locator('tr[data-process="replay"] td[data-col="duration"]')).toHaveText('240');

  // The API agrees.
  const group = await api(`/stream/${id}`);
  expect(group.status).toBe(200);
  const all = await api('/streams');
  const p360 = all.body.streams.find((s: any) => s.streamgroup === group.body.streamgroup && s.profile === '360p');
  expect(p360.processing.replay).toEqual({ enabled: true, duration: 240 });
  expect(group.body.processing.replay).toEqual({ enabled: true, duration: 120 });

  // The streams list shows the group with its profiles and processes.
  await page.getByRole('link', { name: 'Streams', exact: true }).click();
  const row = page.locator(`tr[data-stream="${id}"]`);
  await expect(row).toContainText('passthrough, 720p, 360p');
  await expect(row).toContainText('replay');

  // Sync settings across profiles in the Edit dialog too, as on creation.
  await page.goto(`/stream/${id}`);
  await hydrated(page);
  await page.locator('section.live-processing').getByRole('button', { name: 'Edit options' }).click();
  const again = page.getByRole('dialog');
  await again.getByRole('tab', { name: '360p' }).click();
  await again.getByRole('button', { name: 'Sync settings across profiles' }).click();
  await expect(again.getByRole('status')).toContainText('Settings of 360p copied to every profile');
  await again.getByRole('tab', { name: 'passthrough' }).click();
  await expect(again.locator('#edit-passthrough-replay-duration')).toHaveValue('240');
  await again.getByRole('button', { name: 'Confirm' }).click();
  await expect(again).toHaveCount(0);
  const synced = (await api('/streams')).body.streams
    .filter((s: any) => s.streamgroup === group.body.streamgroup)
    .map((s: any) => s.processing.replay);
  expect(synced).toEqual([0, 1, 2].map(() => ({ enabled: true, duration: 240 })));
});

test('add and remove transcoding profiles from the stream page', async ({ page }) => {
  const made = await api('/stream', {
    method: 'POST',
    body: JSON.stringify({ name: `ladder-${Date.now()}`, transcoding: { profiles: ['360p'] },
      processing: { thumbnail: { enabled: true, interval: 30 } } }),
  });
  expect(made.status).toBe(201);
  await signIn(page, `/stream/${made.body.id}`);
  await hydrated(page);
  const section = page.locator('section.live-processing');
  await expect(section.getByRole('tab')).toHaveText(['passthrough', '360p']);

  await section.getByRole('button', { name: 'Transcoding' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('next ingest');
  await expect(dialog.getByRole('checkbox', { name: /360p/ })).toBeChecked();
  // Nothing to save until something changes.
  await expect(dialog.getByRole('button', { name: 'Confirm' })).toBeDisabled();
  await dialog.getByRole('checkbox', { name: /720p/ }).check();
  await dialog.getByRole('checkbox', { name: /360p/ }).uncheck();
  await expect(dialog.getByTestId('profiles-dropped')).toContainText('Removing 360p deletes its stream');
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(dialog).toHaveCount(0);

  // The new profile has a tab, with the passthrough stream's settings.
  await expect(section.getByRole('tab')).toHaveText(['passthrough', '720p']);
  await section.getByRole('tab', { name: '720p' }).click();
  await expect(section.locator('tr[data-process="thumbnail"] td[data-col="interval"]')).toHaveText('30');
  const all = await api('/streams');
  const group = all.body.streams.filter((s: any) => s.streamgroup === made.body.streamgroup);
  expect(group.map((s: any) => s.profile).sort()).toEqual(['720p', 'passthrough']);
});

test('hydration: the refresh button reloads data without a page load', async ({ page }) => {
  const made = await api('/stream', { method: 'POST', body: JSON.stringify({ name: `refresh-${Date.now()}` }) });
  expect(made.status).toBe(201);
  await signIn(page, `/stream/${made.body.id}`);
  await hydrated(page);
  await expect(page.locator('tr[data-process="thumbnail"]')).toContainText('Inactive');
  // Changed behind the page's back, through the API.
  const put = await api(`/stream/${made.body.id}/processing`, {
    method: 'PUT', body: JSON.stringify({ thumbnail: { enabled: true, interval: 42 } }),
  });
  expect(put.status).toBe(200);
  let navigations = 0;
  page.on('framenavigated', () => navigations++);
  await page.getByRole('button', { name: 'Refresh' }).first().click();
  await expect(page.locator('tr[data-process="thumbnail"]')).toContainText('Active');
  await expect(page.locator('tr[data-process="thumbnail"] td[data-col="interval"]')).toHaveText('42');
  expect(navigations).toBe(0);
});

test('organisation page shows packages; viewer keys cannot edit', async ({ page, browser }) => {
  await signIn(page, '/organisation');
  await expect(page.locator('tr[data-package="liveProcessing"]')).toContainText('Enabled');

  const org = await api('/organisations', { method: 'POST', body: JSON.stringify({ name: `acme-${Date.now()}` }) });
  expect(org.status).toBe(201);
  const ctx = await browser.newContext();
  const other = await ctx.newPage();
  await other.goto('/login?next=/organisation');
  await other.getByLabel('API key').fill(org.body.apiKey);
  await other.getByRole('button', { name: 'Sign in' }).click();
  await other.waitForURL(/\/organisation$/);
  await expect(other.locator('tr[data-package="liveProcessing"]')).toContainText('Upgrade needed');
  // Its admin turns on signed asset URLs, valid for an hour.
  await hydrated(other);
  await expect(other.getByTestId('asset-access')).toContainText('Anyone with an asset URL');
  await other.getByRole('checkbox', { name: 'Require signed URLs' }).check();
  await other.getByLabel('Valid for (seconds)').fill('3600');
  await other.locator('section[aria-labelledby="access-title"]').getByRole('button', { name: 'Save' }).click();
  await expect(other.getByTestId('asset-access')).toContainText('signed URLs');
  await expect(other.getByTestId('asset-access')).toContainText('valid for 1 h');
  const seen = await api('/organisation', { headers: { 'X-API-Key': org.body.apiKey } });
  expect(seen.body.assetAccess).toEqual({ signedUrls: true, ttlSeconds: 3600 });
  // An out-of-range lifetime is refused with the rule.
  await other.getByLabel('Valid for (seconds)').fill('5');
  await other.getByLabel('Valid for (seconds)').evaluate((e: HTMLInputElement) => e.removeAttribute('min'));
  await other.locator('section[aria-labelledby="access-title"]').getByRole('button', { name: 'Save' }).click();
  await expect(other.locator('section[aria-labelledby="access-title"]').getByRole('alert')).toContainText('ttlSeconds must be from 60');
  // Without the package, the processes' controls are disabled, with the notice.
  await other.goto('/streams/new');
  await hydrated(other);
  await expect(other.getByText('Upgrade needed')).toBeVisible();
  await expect(other.locator('#profile-passthrough-thumbnail-enabled')).toBeDisabled();
  await ctx.close();

  const viewer = await api('/keys', { method: 'POST', body: JSON.stringify({ role: 'viewer' }) });
  const made = await api('/stream', { method: 'POST', body: JSON.stringify({ name: `viewed-${Date.now()}` }) });
  const vctx = await browser.newContext();
  const v = await vctx.newPage();
  await v.goto(`/login?next=/stream/${made.body.id}`);
  await v.getByLabel('API key').fill(viewer.body.apiKey);
  await v.getByRole('button', { name: 'Sign in' }).click();
  await v.waitForURL(new RegExp(`/stream/${made.body.id}$`));
  await expect(v.locator('tr[data-process="thumbnail"]')).toBeVisible();
  await expect(v.getByRole('button', { name: 'Edit options' })).toHaveCount(0);
  await expect(v.getByText('read only')).toBeVisible();
  // Read-only keys get no "New stream" anywhere.
  await hydrated(v);
  await expect(v.getByRole('link', { name: 'New stream' })).toHaveCount(0);
  await v.goto('/');
  await hydrated(v);
  await expect(v.getByRole('heading', { name: 'Streams' })).toBeVisible();
  await expect(v.getByRole('link', { name: 'New stream' })).toHaveCount(0);
  await vctx.close();
});

test('usable at 375 px', async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 740 });
  await signIn(page, '/');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
});

test('live: the stream page shows "live" and the first thumbnail by itself, within 3 s', async ({ page }) => {
  test.setTimeout(90_000);
  const made = await api('/stream', {
    method: 'POST',
    body: JSON.stringify({ name: `live-${Date.now()}`, processing: { thumbnail: { enabled: true, interval: 10 } } }),
  });
  expect(made.status).toBe(201);
  const id = made.body.id;
  await signIn(page, `/stream/${id}`);
  await hydrated(page);
  const badge = page.locator('.page-head .badge').first();
  await expect(badge).toHaveText('idle');
  await expect(page.getByText('No thumbnail yet')).toBeVisible();
  let navigations = 0;
  page.on('framenavigated', () => navigations++);
  const ffmpeg = publish(made.body.streamname, 12, '640x360');
  const exited = new Promise<number>((resolve) => ffmpeg.on('exit', (code) => resolve(code ?? -1)));
  // The moment the API says it, the page must follow within 3 s: no reload, no click.
  await expect.poll(async () => (await api(`/stream/${id}`)).body.state, { timeout: 15_000, intervals: [100] }).toBe('live');
  await expect(badge).toHaveText('live', { timeout: 3_000 });
  await expect
    .poll(async () => (await api(`/stream/${id}`)).body.assetCounts.thumbnail, { timeout: 15_000, intervals: [100] })
    .toBeGreaterThan(0);
  await expect(page.locator('img[alt="Latest thumbnail"]')).toBeVisible({ timeout: 3_000 });
  expect(await exited).toBe(0);
  await expect(badge).toHaveText('idle', { timeout: 15_000 });
  expect(navigations).toBe(0);
});
