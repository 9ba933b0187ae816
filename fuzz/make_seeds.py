#!/usr/bin/env python3
"""Makes the fuzz seeds in fuzz/seeds/ from real media: ffmpeg publishes a tiny stream to a
running liveproc through a recording proxy (rtmp_session), the same stream as an FLV file gives
FLV tag bodies (flv_tags) and a keyframe with its avcC (h264_access_unit), and the server's
recording gives fMP4 (fmp4_read). rtsp_session gets an RTSP camera's side of a pull (DESCRIBE,
SETUP, SETUP, PLAY answers, then the same stream as interleaved RTP: H.264 single NAL units and
FU-A, AAC in mpeg4-generic), built from the flv_tags seed.

Usage: python3 fuzz/make_seeds.py target/release/liveproc
       python3 fuzz/make_seeds.py --rtsp      (only rtsp_session, from the committed FLV seed)
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


def rtp(channel, pt, seq, ts, ssrc, payload, mark=False):
    """One interleaved RTP packet: `$`, channel, length, RTP header, payload."""
    pkt = bytes([0x80, (0x80 if mark else 0) | pt]) + struct.pack(">HII", seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
    return b"$" + bytes([channel]) + struct.pack(">H", len(pkt)) + pkt


def rtsp_from_flv_seed():
    """The camera's side of an RTSP pull of the flv_tags seed's stream."""
    import base64
    data = open(os.path.join(SEEDS, "flv_tags", "ffmpeg-64x48-1s"), "rb").read()
    tags, at = [], 0
    while at + 7 <= len(data):
        kind, ts, n = data[at], *struct.unpack(">IH", data[at + 1:at + 7])
        tags.append((kind, ts, data[at + 7:at + 7 + n]))
        at += 7 + n
    avcc = next(b[5:] for k, _, b in tags if k == 0 and b[1] == 0)
    asc = next(b[2:] for k, _, b in tags if k == 1 and b[1] == 0)
    sps_len = struct.unpack(">H", avcc[6:8])[0]
    sps = avcc[8:8 + sps_len]
    pps_len = struct.unpack(">H", avcc[9 + sps_len:11 + sps_len])[0]
    pps = avcc[11 + sps_len:11 + sps_len + pps_len]
    rate = {3: 48000, 4: 44100}[((asc[0] & 7) << 1) | (asc[1] >> 7)]
    sdp = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n"
           "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
           f"a=fmtp:96 packetization-mode=1;profile-level-id={sps[1:4].hex()};sprop-parameter-sets="
           f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}\r\na=control:trackID=0\r\n"
           f"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/{rate}/1\r\n"
           "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;"
           f"indexdeltalength=3;config={asc.hex()}\r\na=control:trackID=1\r\n").encode()
    out = (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n"
           + f"Content-Length: {len(sdp)}\r\n\r\n".encode() + sdp)
    for cseq, channels in ((2, "0-1"), (3, "2-3")):
        out += (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nTransport: RTP/AVP/TCP;unicast;interleaved={channels}\r\n"
                "Session: 12345678;timeout=60\r\n\r\n").encode()
    out += (b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 12345678\r\n"
            b"RTP-Info: url=trackID=0;seq=1;rtptime=0,url=trackID=1;seq=1;rtptime=0\r\n\r\n")
    vseq, aseq, frames = 1, 1, 0
    for kind, ts, body in tags:
        if kind == 0 and body[1] == 1:
            nals, at = [], 5
            while at + 4 <= len(body):
                n = struct.unpack(">I", body[at:at + 4])[0]
                nals.append(body[at + 4:at + 4 + n])
                at += 4 + n
            cts = int.from_bytes(body[2:5], "big")
            for i, nal in enumerate(nals):
                last = i == len(nals) - 1
                pieces = [nal] if len(nal) <= 600 else None
                if pieces:
                    out += rtp(0, 96, vseq, (ts + cts) * 90, 0x1111, nal, last)
                    vseq += 1
                    continue
                # FU-A: the NAL header's NRI and type, split in 600-byte pieces.
                head, rest = nal[0], nal[1:]
                chunks = [rest[j:j + 600] for j in range(0, len(rest), 600)]
                for j, c in enumerate(chunks):
                    fu = bytes([(head & 0xE0) | 28, (0x80 if j == 0 else 0) | (0x40 if j == len(chunks) - 1 else 0) | (head & 0x1F)])
                    out += rtp(0, 96, vseq, (ts + cts) * 90, 0x1111, fu + c, last and j == len(chunks) - 1)
                    vseq += 1
        elif kind == 1 and body[1] == 1:
            au = body[2:]
            payload = struct.pack(">HH", 16, len(au) << 3) + au
            out += rtp(2, 97, aseq, frames * 1024, 0x2222, payload, True)
            aseq, frames = aseq + 1, frames + 1
    write("rtsp_session", "camera-64x48-1s", out)


seen = set()

if __name__ == "__main__":
    if sys.argv[1:] != ["--rtsp"]:
        with tempfile.TemporaryDirectory() as tmp:
            from_flv(tmp)
            from_server(sys.argv[1], tmp)
    rtsp_from_flv_seed()
    for target in sorted(os.listdir(SEEDS)):
        for f in sorted(os.listdir(os.path.join(SEEDS, target))):
            print(target, f, os.path.getsize(os.path.join(SEEDS, target, f)))
