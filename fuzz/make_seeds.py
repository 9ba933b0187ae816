#!/usr/bin/env python3
"""Makes the fuzz seeds in fuzz/seeds/ from real media: ffmpeg publishes a tiny stream to a
running liveproc through a recording proxy (rtmp_session), the same stream as an FLV file gives
FLV tag bodies (flv_tags) and a keyframe with its avcC (h264_access_unit), and the server's
recording gives fMP4 (fmp4_read).

Usage: python3 fuzz/make_seeds.py target/release/liveproc
The seeds are committed; run this again only to renew them.
"""
import json, os, shutil, socket, struct, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(ROOT, "seeds")
KEY = "fuzz-seed-operator-key-0123456789"
SRC = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-f", "lavfi",
       "-i", "sine=frequency=440:sample_rate=44100", "-t", "1.2",
       "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-bf", "2",
       "-c:a", "aac", "-b:a", "32k"]


def write(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def flv_tags(path):
    """(type, timestamp, body) of each tag of an FLV file."""
    data = open(path, "rb").read()
    at = struct.unpack(">I", data[5:9])[0] + 4
    while at + 11 <= len(data):
        kind, size = data[at], int.from_bytes(data[at + 1:at + 4], "big")
        ts = int.from_bytes(data[at + 4:at + 7], "big") | data[at + 7] << 24
        yield kind, ts, data[at + 11:at + 11 + size]
        at += 11 + size + 4


def from_flv(tmp):
    path = os.path.join(tmp, "s.flv")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *SRC, path], check=True)
    records, avcc, keyframe = b"", None, None
    for kind, ts, body in flv_tags(path):
        if kind not in (8, 9):
            continue
        records += bytes([0 if kind == 9 else 1]) + struct.pack(">IH", ts, len(body)) + body
        if kind == 9 and body[1] == 0:
            avcc = body[5:]
        elif kind == 9 and body[0] >> 4 == 1 and keyframe is None:
            keyframe = body[5:]
    write("flv_tags", "ffmpeg-64x48-1s", records)
    write("h264_access_unit", "ffmpeg-64x48-keyframe", struct.pack(">H", len(avcc)) + avcc + keyframe)


def proxy(listen, upstream, captured):
    """Forwards one connection, keeping what the client sent."""
    client, _ = listen.accept()
    server = socket.create_connection(upstream)

    def pump(a, b, keep):
        while (chunk := a.recv(65536)):
            if keep:
                captured.append(chunk)
            b.sendall(chunk)
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other side is gone already

    t = threading.Thread(target=pump, args=(server, client, False), daemon=True)
    t.start()
    pump(client, server, True)
    t.join(5)


def api(http, method, path, body=None):
    req = urllib.request.Request(f"http://{http}{path}", method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"x-api-key": KEY, "content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def from_server(binary, tmp):
    http, rtmp = "127.0.0.1:3917", ("127.0.0.1", 3935)
    data = os.path.join(tmp, "data")
    server = subprocess.Popen([binary, "--http", http, "--rtmp", "%s:%d" % rtmp, "--data", data,
                               "--admin-key", KEY], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://{http}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        s = api(http, "POST", "/api/v1/stream", {"name": "seed"})
        api(http, "PUT", f"/api/v1/stream/{s['id']}/processing",
            {"recording": {"enabled": True}, "replay": {"enabled": True}})
        listen = socket.create_server(("127.0.0.1", 0))
        captured = []
        t = threading.Thread(target=proxy, args=(listen, rtmp, captured))
        t.start()
        port = listen.getsockname()[1]
        subprocess.run(["ffmpeg", "-loglevel", "error", "-re", *SRC, "-f", "flv",
                        f"rtmp://127.0.0.1:{port}/live/{s['streamname']}"], check=True)
        t.join(10)
        # Without C0, C1 and C2 (1 + 2 × 1536 bytes): the harness sends its own.
        write("rtmp_session", "ffmpeg-publish-64x48-1s", b"".join(captured)[1 + 2 * 1536:])
        time.sleep(1)
        # The recording (init + fragments), and the replay's init and first segment.
        for dirpath, _, files in sorted(os.walk(data)):
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                print("data:", os.path.relpath(p, data), os.path.getsize(p))
                name = {".mp4": "recording.mp4", ".m4s": "replay-segment.m4s"}.get(os.path.splitext(f)[1])
                if f.startswith("init"):
                    name = "replay-init.mp4"
                if name and name not in seen:
                    seen.add(name)
                    write("fmp4_read", name, open(p, "rb").read())
    finally:
        server.terminate()
        server.wait()


seen = set()

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        from_flv(tmp)
        from_server(sys.argv[1], tmp)
    for target in sorted(os.listdir(SEEDS)):
        for f in sorted(os.listdir(os.path.join(SEEDS, target))):
            print(target, f, os.path.getsize(os.path.join(SEEDS, target, f)))
