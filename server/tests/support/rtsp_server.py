#!/usr/bin/python3
"""A real RTSP camera for liveproc's tests: GStreamer's RTSP server (Debian packages
python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-*, gstreamer1.0-libav).

Usage: rtsp_server.py PORT [KIND] — serves rtsp://127.0.0.1:PORT/cam and prints "ready" once
listening. KIND: "h264-aac" (default: H.264 640x360 25 fps + AAC 48 kHz), "h264-pcma" (the usual
IP-camera default: H.264 + G.711 A-law 8 kHz), "h264-pcmu" (G.711 µ-law), "h265-aac" (H.265 + AAC)."""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
kind = sys.argv[2] if len(sys.argv) > 2 else "h264-aac"
# 4:2:0, as cameras send: videotestsrc would otherwise negotiate 4:4:4 for x265.
video_source = (
    "videotestsrc is-live=true pattern=ball "
    "! video/x-raw,format=I420,width=640,height=360,framerate=25/1 "
)
video = {
    "h264": "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 ",
    "h265": "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
    "! rtph265pay name=pay0 pt=96 config-interval=1 ",
}[kind.split("-")[0]]
audio = {
    "aac": "audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! avenc_aac "
    "! rtpmp4gpay name=pay1 pt=97 ",
    "pcma": "audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! alawenc "
    "! rtppcmapay name=pay1 pt=8 ",
    "pcmu": "audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! mulawenc "
    "! rtppcmupay name=pay1 pt=0 ",
}[kind.split("-")[1]]
factory.set_launch("( " + video_source + video + audio + ")")
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("could not listen")
print("ready", flush=True)
GLib.MainLoop().run()
