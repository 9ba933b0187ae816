//! The asset folder's layout, in one place: each kind of asset knows its folder below
//! `DATA/assets`, its file names and the files that go with it.
//!
//! ```text
//! recordings/STREAM/SESSION-N.mp4
//! replay/STREAM/SESSION/index.m3u8, init-V.mp4, seg-N.m4s
//! thumbnails/STREAM/SESSION/N.jpg        + N.320.jpg (the preview)
//! motionclips/STREAM/SESSION/N.gif       + N.mp4 (the same span, remuxed)
//! clips/STREAM/ID.mp4                    + ID.jpg (the share page's poster)
//! ```

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    Recording,
    Replay,
    Thumbnail,
    MotionClip,
    Clip,
}

impl AssetKind {
    pub const ALL: [AssetKind; 5] = [
        AssetKind::Recording,
        AssetKind::Replay,
        AssetKind::Thumbnail,
        AssetKind::MotionClip,
        AssetKind::Clip,
    ];

    /// The name in the database and the API (`assets.kind`, `assetCounts`).
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Recording => "recording",
            AssetKind::Replay => "replay",
            AssetKind::Thumbnail => "thumbnail",
            AssetKind::MotionClip => "motionclip",
            AssetKind::Clip => "clip",
        }
    }

    pub fn parse(kind: &str) -> Option<AssetKind> {
        AssetKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind's folder below the assets folder; each holds one folder per stream.
    pub fn folder(self) -> &'static str {
        match self {
            AssetKind::Recording => "recordings",
            AssetKind::Replay => "replay",
            AssetKind::Thumbnail => "thumbnails",
            AssetKind::MotionClip => "motionclips",
            AssetKind::Clip => "clips",
        }
    }

    /// The suffix of the file that goes with each file of this kind, if any (see [`sibling`]).
    pub fn sibling(self) -> Option<&'static str> {
        match self {
            AssetKind::Thumbnail => Some(PREVIEW_SUFFIX),
            AssetKind::MotionClip => Some(".mp4"),
            AssetKind::Clip => Some(".jpg"),
            AssetKind::Recording | AssetKind::Replay => None,
        }
    }

    /// The N-th history file of a session (a thumbnail or a motion clip).
    pub fn history_file(self, stream: &str, session: &str, index: i64) -> String {
        let ext = match self {
            AssetKind::MotionClip => "gif",
            _ => "jpg",
        };
        format!("{}/{stream}/{session}/{index}.{ext}", self.folder())
    }

    /// The N-th file of a session's recording.
    pub fn recording_file(stream: &str, session: &str, index: i64) -> String {
        format!(
            "{}/{stream}/{session}-{index}.mp4",
            AssetKind::Recording.folder()
        )
    }

    /// A session's replay folder (its playlist is `index.m3u8` in it).
    pub fn replay_folder(stream: &str, session: &str) -> String {
        format!("{}/{stream}/{session}", AssetKind::Replay.folder())
    }

    /// A clip's MP4.
    pub fn clip_file(stream: &str, id: &str) -> String {
        format!("{}/{stream}/{id}.mp4", AssetKind::Clip.folder())
    }

    /// Every file a row of this kind owns: the file and its sibling.
    pub fn files(self, path: &str) -> Vec<String> {
        let mut out = vec![path.to_string()];
        out.extend(self.sibling().map(|s| sibling(path, s)));
        out
    }
}

/// A thumbnail's small preview, next to it.
pub const PREVIEW_SUFFIX: &str = ".320.jpg";
/// The playlist of a replay folder.
pub const REPLAY_PLAYLIST: &str = "index.m3u8";

/// The file next to an asset with another suffix: `…/7.jpg` → `…/7.320.jpg`, `…/7.gif` → `…/7.mp4`.
pub fn sibling(path: &str, suffix: &str) -> String {
    let stem = path.rsplit_once('.').map_or(path, |(s, _)| s);
    format!("{stem}{suffix}")
}

/// The stream an asset path belongs to: `KIND/STREAM/…`, or `STREAM/thumbnail|motionclip/latest…`.
pub fn stream_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    let first = parts.next()?;
    if AssetKind::ALL.iter().any(|k| k.folder() == first) {
        parts.next()
    } else {
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_what_the_files_on_disk_say() {
        assert_eq!(
            AssetKind::Thumbnail.history_file("st", "se", 3),
            "thumbnails/st/se/3.jpg"
        );
        assert_eq!(
            AssetKind::Thumbnail.files("thumbnails/st/se/3.jpg"),
            ["thumbnails/st/se/3.jpg", "thumbnails/st/se/3.320.jpg"]
        );
        assert_eq!(
            AssetKind::MotionClip.files(&AssetKind::MotionClip.history_file("st", "se", 1)),
            ["motionclips/st/se/1.gif", "motionclips/st/se/1.mp4"]
        );
        assert_eq!(
            AssetKind::recording_file("st", "se", 2),
            "recordings/st/se-2.mp4"
        );
        assert_eq!(AssetKind::clip_file("st", "c"), "clips/st/c.mp4");
        assert_eq!(AssetKind::parse("motionclip"), Some(AssetKind::MotionClip));
        assert_eq!(AssetKind::parse("thumbnails"), None);
        assert_eq!(stream_of("recordings/st/a-1.mp4"), Some("st"));
        assert_eq!(stream_of("st/thumbnail/latest.jpg"), Some("st"));
    }
}
