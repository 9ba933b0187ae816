#!/usr/bin/env python3
"""A/V drift bench: one long ffmpeg publish into the release server, then how far audio and
video moved apart in the recording.

    python3 scripts/drift.py [--seconds 3600] [--readrate 4] [--audio aac|mp3] [--json FILE]

The publisher is ffmpeg from lavfi (testsrc2 640x360 30 fps, x264 High with B-frames; a 48 kHz
tone as AAC, or 44.1 kHz MP3, which liveproc transcodes to Opus), sent at --readrate times real
time (ingest does not need real time; the processes keep up at 4x). lavfi's audio and video
come from one sample-exact clock, so any drift is liveproc's. The recording (one file for the
whole stream) is probed packet by packet: at every video keyframe, where each track puts its
n-th frame against where counting frames puts it (n x frame duration); drift = the largest
change of the difference between the tracks from the first keyframe's. Pass: drift <= one
audio frame. The recording must also decode clean.
BENCHMARKS.md records the last run.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def api(base, key, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("X-API-Key", key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read() or b"null")


def packets(path):
    """(stream index, pts seconds, keyframe) of every packet, in file order."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,flags",
         "-of", "csv=p=0", path], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split(",")
        if len(f) >= 3 and f[1] not in ("", "N/A"):
            rows.append((int(f[0]), float(f[1]), "K" in f[2]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=3600)
    ap.add_argument("--readrate", type=float, default=4.0)
    ap.add_argument("--audio", choices=["aac", "mp3"], default="aac")
    ap.add_argument("--json")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/liveproc"))
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="liveproc-drift-")
    port = 4059 + random.randint(0, 30)
    rtmp = port + 16000
    key = f"drift-operator-key-{int(time.time())}"
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.binary, "--http", f"127.0.0.1:{port}", "--rtmp", f"127.0.0.1:{rtmp}",
         "--data", data, "--admin-key", key],
        stdout=open(os.path.join(data, "server.log"), "w"), stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2)
                break
            except Exception:
                time.sleep(0.2)
        s = api(base, key, "POST", "/api/v1/stream",
                {"name": "drift", "processing": {"recording": {"enabled": True}}})
        audio = (["-c:a", "aac", "-b:a", "128k", "-ar", "48000"] if args.audio == "aac" else
                 ["-c:a", "libmp3lame", "-b:a", "128k", "-ar", "44100"])
        started = time.time()
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-readrate", str(args.readrate),
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
             "-readrate", str(args.readrate),
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", str(args.seconds), "-c:v", "libx264", "-preset", "veryfast",
             "-profile:v", "high", "-pix_fmt", "yuv420p", "-g", "60", "-b:v", "800k", *audio,
             "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/{s['streamname']}"], check=True)
        wall = time.time() - started
        vod = None
        for _ in range(600):
            st = api(base, key, "GET", f"/api/v1/stream/{s['id']}")
            vods = [v for v in st["playout"]["web"] if v["type"] == "vod"]
            if st["state"] == "idle" and vods and vods[0]["status"] == "ready":
                vod = vods[0]
                break
            time.sleep(0.5)
        assert vod, "no recording"
        path = os.path.join(data, "assets", vod["url"].split("/assets/", 1)[1])
        decode = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-i", path,
                                 "-f", "null", "-"], capture_output=True, text=True)
        rows = packets(path)
        streams = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=index,codec_type,codec_name",
             "-of", "json", path], capture_output=True, text=True, check=True).stdout)["streams"]
        kinds = {x["index"]: x["codec_type"] for x in streams}
        vi = next(i for i, k in kinds.items() if k == "video")
        ai = next(i for i, k in kinds.items() if k == "audio")
        audio_pts = sorted(p for i, p, _ in rows if i == ai)
        video_pts = sorted(p for i, p, _ in rows if i == vi)
        frame = sorted(b - a for a, b in zip(audio_pts, audio_pts[1:]))[len(audio_pts) // 2]
        tick = sorted(b - a for a, b in zip(video_pts, video_pts[1:]))[len(video_pts) // 2]
        # Where each track puts its n-th frame, against where counting frames (the source's
        # clock) puts it: their difference moves only if the tracks drift apart.
        keys = sorted(p for i, p, k in rows if i == vi and k)
        offsets = []
        j = k = 0
        for t in keys:
            while k < len(video_pts) and video_pts[k] < t:
                k += 1
            while j < len(audio_pts) and audio_pts[j] < t:
                j += 1
            if j == len(audio_pts) or k == len(video_pts):
                break
            offsets.append((t, (audio_pts[j] - j * frame) - (video_pts[k] - k * tick)))
        first = offsets[0][1]
        drift = max(abs(o - first) for _, o in offsets)
        figures = {
            "seconds": args.seconds, "readrate": args.readrate, "audio": args.audio,
            "recorded_audio_codec": next(x["codec_name"] for x in streams if x["index"] == ai),
            "wall_seconds": round(wall, 1),
            "keyframes_compared": len(offsets),
            "audio_frame_ms": round(frame * 1000, 2),
            "offset_first_ms": round(first * 1000, 2),
            "offset_last_ms": round(offsets[-1][1] * 1000, 2),
            "max_drift_ms": round(drift * 1000, 2),
            "video_end_s": round(max(p for i, p, _ in rows if i == vi), 3),
            "audio_end_s": round(audio_pts[-1], 3),
            "decode_errors": decode.stderr.strip()[:500],
        }
        figures["pass"] = drift <= frame + 1e-6 and not figures["decode_errors"]
        print(json.dumps(figures, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2)
        return 0 if figures["pass"] else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
