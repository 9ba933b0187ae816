//! HLS playlist text: the fMP4 media playlist (live, replay) and the multivariant playlist of
//! a stream with renditions.

use std::fmt::Write;

/// What a playlist says of one segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub sequence: u64,
    pub duration: f64,
    pub wall_ms: i64,
    pub init: u32,
    /// Segments are missing before this one (a replay write failed): a discontinuity.
    pub gap: bool,
}

/// An fMP4 media playlist (RFC 8216, version 7) over `entries`, oldest first. `kind` is an
/// `EXT-X-PLAYLIST-TYPE` (EVENT for a replay that keeps the whole session).
pub(crate) fn render_playlist(
    entries: impl Iterator<Item = Entry> + Clone,
    kind: Option<&str>,
    ended: bool,
) -> String {
    let target = entries
        .clone()
        .map(|e| e.duration.ceil() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let first = entries.clone().next().map_or(0, |e| e.sequence);
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    if let Some(kind) = kind {
        let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{kind}");
    }
    let mut init = None;
    for e in entries {
        if init != Some(e.init) {
            if init.is_some() {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"init-{}.mp4\"", e.init);
            init = Some(e.init);
        } else if e.gap {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = write!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},\nseg-{}.m4s\n",
            domain::store::rfc3339(e.wall_ms),
            e.duration,
            e.sequence
        );
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// One variant of a multivariant playlist.
pub(crate) struct Variant {
    /// Peak and average bits per second.
    pub bandwidth: u64,
    pub average: u64,
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codecs, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    pub name: String,
    /// The variant's stream: its media playlist is `../STREAM/index.m3u8`.
    pub stream_id: String,
}

/// A multivariant (ABR) playlist over `variants`, in the order players should list them.
pub(crate) fn multivariant(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",NAME=\"{}\"\n../{}/index.m3u8\n",
            v.bandwidth, v.average, v.width, v.height, v.codecs, v.name, v.stream_id,
        );
    }
    out
}
