import { expect, Page } from '@playwright/test';

export const apiKey = process.env.E2E_API_KEY ?? '';
export const baseURL = process.env.E2E_BASE_URL ?? 'http://127.0.0.1:3939';

/** Waits until wasm has hydrated the page (the App sets this marker from an effect). */
export async function hydrated(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

export async function signIn(page: Page, next = '/') {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('API key').fill(apiKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => u.pathname === next);
}

export async function api(path: string, init: RequestInit = {}) {
  const res = await fetch(`${baseURL}/api/v1${path}`, {
    ...init,
    headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
  });
  return { status: res.status, body: res.status === 204 ? null : await res.json() };
}
