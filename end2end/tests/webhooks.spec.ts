import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { hydrated, signIn } from './helpers';

const secret = 'whsec_e2e_0123456789abcdef0123456789abcdef';

test('the webhooks page adds an endpoint, sends a test event and shows its delivery log', async ({ page }) => {
  test.setTimeout(60_000);
  // A real receiver on loopback (it checks each signature with Python's hmac).
  const port = 20000 + Math.floor(Math.random() * 20000);
  const out = join(mkdtempSync(join(tmpdir(), 'hooks-')), 'received.jsonl');
  const receiver = spawn('python3', ['../server/tests/support/webhook_receiver.py', String(port), out, secret],
    { stdio: 'ignore' });
  try {
    await signIn(page, '/webhooks');
    await hydrated(page);
    // An address inside the cloud's network is refused with the reason.
    await page.getByTestId('webhook-url').fill('http://169.254.169.254/latest/meta-data');
    await page.getByTestId('webhook-add').click();
    await expect(page.getByRole('alert')).toContainText('link-local');

    await page.getByTestId('webhook-url').fill(`http://127.0.0.1:${port}/hook`);
    await page.getByTestId('webhook-secret').fill(secret);
    await page.getByTestId('webhook-add').click();
    await expect(page.getByTestId('webhook-new-secret')).toHaveText(secret);
    const card = page.locator('section.webhook').filter({ hasText: `127.0.0.1:${port}` });
    await expect(card).toBeVisible();
    await card.getByTestId('webhook-test').click();
    // The delivery log shows it delivered with the receiver's answer, without a reload.
    const row = card.locator('table.deliveries tbody tr').first();
    await expect(row).toHaveAttribute('data-state', 'delivered', { timeout: 15_000 });
    await expect(row.locator('td').first()).toHaveText('webhook.test');
    await expect(row.locator('td').nth(3)).toHaveText('200');
    const got = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(got.some((l) => l.type === 'webhook.test' && l.valid === true)).toBe(true);
    await page.screenshot({ path: 'test-results/webhooks.png', fullPage: true });
  } finally {
    receiver.kill();
  }
});
