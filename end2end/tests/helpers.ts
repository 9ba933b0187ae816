import { spawn } from 'node:child_process';
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

const rtmp = process.env.E2E_RTMP ?? 'rtmp://127.0.0.1:19350';

/** ffmpeg as a publisher: H.264 High with B-frames and AAC, a keyframe every second. */
export function publish(streamname: string, seconds: number, size = '1280x720') {
  return spawn('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'high', '-pix_fmt', 'yuv420p', '-bf', '2', '-g', '25',
    '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', `${rtmp}/live/${streamname}`,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** ffmpeg sending `seconds` of small video and audio at `speed` times real time (a keyframe
 *  exactly every second), to make many assets quickly. */
export function publishFast(streamname: string, seconds: number, speed: number) {
  return spawn('ffmpeg', [
    '-hide_banner', '-loglevel', 'error',
    '-readrate', String(speed), '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=25',
    '-readrate', String(speed), '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', '25', '-keyint_min', '25',
    '-sc_threshold', '0', '-c:a', 'aac', '-b:a', '32k', '-f', 'flv', `${rtmp}/live/${streamname}`,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
}
