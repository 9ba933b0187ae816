#!/usr/bin/env python3
"""Soak run: N real ffmpeg publishers plus API and player clients against the release server
for a bounded time, then the verdict.

    python3 scripts/soak.py [--streams N] [--seconds S] [--clients K] [--json FILE]

Each publisher loops a cached 640x360 H.264 High + AAC clip with `-c copy` (so the publishers
cost little CPU and the server is what is measured). Every stream runs thumbnails (10 s),
recording (60 s files) and replay; one group also has a 240p rendition. Clients poll the API
(list, stream, organisation), the live playlists and their newest segments, and /metrics.

Pass (exit 0) when: no 5xx and no failed request; every stream's live playlist advanced
without a gap in media sequence numbers as sampled; no bus events dropped; the recordings of
every stream add up to the time it was live (within 2 s each); the replay playlists have no
discontinuity; RSS after the warm-up grows by less than 10 % + 16 MB by the end. Figures go
to stdout (and --json); design/reliability.md records a 10-minute run.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"soak: {msg}", flush=True)


class Http:
    def __init__(self, base, key):
        self.base, self.key = base, key
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []

    def request(self, method, path, body=None, count=True):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("X-API-Key", self.key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                status, payload = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        except Exception as e:  # connection refused, reset, timeout: a failure too
            status, payload = 0, str(e).encode()
        if count:
            with self.lock:
                klass = f"{status // 100}xx" if status else "error"
                self.counts[klass] = self.counts.get(klass, 0) + 1
                if status == 0 or status >= 500:
                    self.failures.append(f"{method} {path}: {status} {payload[:200]!r}")
        return status, payload

    def json(self, method, path, body=None):
        status, payload = self.request(method, path, body)
        return status, (json.loads(payload) if payload and status < 500 and status else None)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clip(cache):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, "soak-640x360-10s.flv")
    if not os.path.exists(path):
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
             "-pix_fmt", "yuv420p", "-bf", "2", "-g", "25", "-b:v", "800k",
             "-c:a", "aac", "-b:a", "64k", "-f", "flv", path + ".part"],
            check=True)
        os.rename(path + ".part", path)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--json")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/liveproc"))
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="liveproc-soak-")
    port = 3959 + random.randint(0, 30)
    rtmp = port + 16000
    key = f"soak-operator-key-{int(time.time())}"
    server_log = open(os.path.join(data, "server.log"), "w")
    server = subprocess.Popen(
        [args.binary, "--http", f"127.0.0.1:{port}", "--rtmp", f"127.0.0.1:{rtmp}",
         "--data", data, "--admin-key", key],
        stdout=server_log, stderr=subprocess.STDOUT, cwd=ROOT)
    publishers = []
    stop = threading.Event()
    try:
        http = Http(f"http://127.0.0.1:{port}", key)
        for _ in range(100):
            if http.request("GET", "/healthz", count=False)[0] == 200:
                break
            time.sleep(0.2)
        source = clip(os.path.join(ROOT, "target", "bench-cache"))
        streams = []
        processing = {"thumbnail": {"enabled": True, "interval": 10},
                      "recording": {"enabled": True, "duration": 60},
                      "replay": {"enabled": True}}
        for i in range(args.streams):
            body = {"name": f"soak-{i}", "processing": processing}
            if i == 0:
                body["transcoding"] = {"profiles": ["240p"]}
            status, s = http.json("POST", "/api/v1/stream", body)
            assert status == 201, (status, s)
            streams.append(s)
        log(f"{args.streams} streams, {args.clients} clients, {args.seconds} s on port {port}")
        started = time.time()
        for s in streams:
            publishers.append(subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                 "-i", source, "-t", str(args.seconds), "-c", "copy", "-f", "flv",
                 f"rtmp://127.0.0.1:{rtmp}/live/{s['streamname']}"],
                stdin=subprocess.DEVNULL))

        ids = [s["id"] for s in streams]
        seen = {i: set() for i in ids}  # live media sequence numbers sampled per stream
        seen_lock = threading.Lock()

        def sample(sid):
            """Reads a live playlist and notes its segments; answers the newest one's name."""
            status, body = http.request("GET", f"/hls/{sid}/index.m3u8")
            if status != 200:
                return None
            text = body.decode()
            first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
            segs = [l for l in text.splitlines() if l.endswith(".m4s")]
            with seen_lock:
                seen[sid].update(range(first, first + len(segs)))
            return segs[-1] if segs else None

        def client(n):
            rnd = random.Random(n)
            while not stop.is_set():
                sid = rnd.choice(ids)
                kind = rnd.random()
                if kind < 0.3:
                    http.request("GET", "/api/v1/streams?asset_limit=3")
                elif kind < 0.5:
                    http.request("GET", f"/api/v1/stream/{sid}?asset_limit=5")
                elif kind < 0.55:
                    http.request("GET", "/api/v1/organisation")
                elif kind < 0.6:
                    http.request("GET", "/metrics")
                else:
                    newest = sample(sid)
                    if newest:
                        http.request("GET", f"/hls/{sid}/{newest}")
                time.sleep(0.05)

        clients = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in range(args.clients)]
        for c in clients:
            c.start()
        # Every stream's playlist is also sampled every 2 s, well inside its 10-segment window.
        samples = []
        warm = None
        while time.time() - started < args.seconds:
            for sid in ids:
                sample(sid)
            t = time.time() - started
            if not samples or t - samples[-1][0] >= 10:
                samples.append((t, rss_mb(server.pid), cpu_s(server.pid)))
                if warm is None and t >= min(60, args.seconds / 4):
                    warm = samples[-1]
                log(f"{t:5.0f} s  rss {samples[-1][1]:.0f} MB  cpu {samples[-1][2]:.0f} s  "
                    f"requests {sum(http.counts.values())}")
            time.sleep(2)
        for p in publishers:
            p.wait(timeout=60)
        live_s = time.time() - started
        stop.set()
        for c in clients:
            c.join(timeout=20)
        # Sessions end, files are finished.
        deadline = time.time() + 30
        views = []
        while time.time() < deadline:
            views = [http.json("GET", f"/api/v1/stream/{i}?asset_limit=100")[1] for i in ids]
            if all(v and v["state"] == "idle" for v in views):
                break
            time.sleep(1)
        end = (time.time() - started, rss_mb(server.pid), cpu_s(server.pid))

        problems = list(http.failures[:20])
        gaps = {}
        for sid, nums in seen.items():
            if not nums:
                problems.append(f"{sid}: live playlist never seen")
                continue
            missing = set(range(min(nums), max(nums) + 1)) - nums
            if missing:
                gaps[sid] = len(missing)
        if gaps:
            problems.append(f"segments never seen in the live playlists: {gaps}")
        recorded = {}
        for v in views:
            vods = [w for w in v["playout"]["web"] if w.get("type") == "vod"]
            total = sum(w.get("duration") or 0 for w in vods)
            recorded[v["id"]] = round(total, 1)
            if abs(total - args.seconds) > 2.5:
                problems.append(f"{v['id']}: recordings hold {total:.1f} s of {args.seconds} s")
            for r in v["playout"]["replay"]:
                status, body = http.request("GET", "/assets/" + r["hls"].split("/assets/", 1)[1])
                if status != 200 or b"#EXT-X-DISCONTINUITY" in body:
                    problems.append(f"{v['id']}: replay playlist {status} or discontinuous")
        dropped = 0
        for line in open(os.path.join(data, "server.log")):
            if "slow consumer dropped events" in line:
                dropped += 1
            if " ERROR " in line or "panicked" in line:
                problems.append("server log: " + line.strip()[:200])
        if dropped:
            problems.append(f"{dropped} 'slow consumer dropped events' lines")
        growth = end[1] - warm[1] if warm else 0.0
        if warm and growth > warm[1] * 0.10 + 16:
            problems.append(f"RSS grew {growth:.0f} MB after the warm-up ({warm[1]:.0f} → {end[1]:.0f} MB)")
        figures = {
            "streams": args.streams, "seconds": args.seconds, "clients": args.clients,
            "requests": http.counts, "rss_mb": [(round(t), round(r, 1)) for t, r, _ in samples],
            "rss_after_warmup_mb": round(warm[1], 1) if warm else None,
            "rss_end_mb": round(end[1], 1), "server_cpu_s": round(end[2], 1),
            "server_cpu_percent": round(100 * end[2] / live_s, 1),
            "segments_seen": {i: len(n) for i, n in seen.items()}, "segment_gaps": gaps,
            "recorded_s": recorded, "problems": problems,
        }
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2)
        log(f"requests {http.counts}; RSS {figures['rss_after_warmup_mb']} MB after warm-up, "
            f"{figures['rss_end_mb']} MB at the end; server CPU {figures['server_cpu_percent']} % "
            f"of a core; segments seen per stream {min(figures['segments_seen'].values())}–"
            f"{max(figures['segments_seen'].values())}, gaps {len(gaps)}; recordings {recorded}")
        if problems:
            for p in problems:
                log("PROBLEM " + p)
            return 1
        log("pass")
        return 0
    finally:
        stop.set()
        for p in publishers:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
