//! Live-processing settings and the product's range rules.
//!
//! One [`Processing`] per stream. The ranges are product rules (thumbnail and motion-clip interval
//! 10–3600 s, motion-clip duration 1–60 s, recording and replay duration ≥ 1 s or unset = whole
//! stream); the API, the server functions and the dashboard all check them here.

use serde::{Deserialize, Deserializer, Serialize};

pub const INTERVAL_MIN: i64 = 10;
pub const INTERVAL_MAX: i64 = 3600;
pub const CLIP_DURATION_MIN: i64 = 1;
pub const CLIP_DURATION_MAX: i64 = 60;
pub const DURATION_MIN: i64 = 1;

/// The four processes, in the order the dashboard shows them.
pub const PROCESSES: [&str; 4] = ["thumbnail", "motionclip", "recording", "replay"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct Thumbnail {
    pub enabled: bool,
    /// Seconds between snapshots, 10–3600.
    pub interval: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct MotionClip {
    pub enabled: bool,
    /// Seconds between clips, 10–3600: a clip starts at the first keyframe every `interval`
    /// seconds, whatever its duration.
    pub interval: i64,
    /// Length of each clip in seconds, 1–60, from its keyframe. A duration of at least the
    /// interval makes clips overlap (e.g. 60 s clips every 10 s each cover the minute before the
    /// next one starts); a session's last clip is kept when it holds at least a second.
    pub duration: i64,
}

/// Recording and replay share a shape: a duration of at least 1 s, or `null` for the whole stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct Span {
    pub enabled: bool,
    /// Seconds (≥ 1), or null for the whole stream.
    pub duration: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
pub struct Processing {
    pub thumbnail: Thumbnail,
    pub motionclip: MotionClip,
    pub recording: Span,
    pub replay: Span,
}

impl Default for Processing {
    fn default() -> Self {
        Processing {
            thumbnail: Thumbnail {
                enabled: false,
                interval: 10,
            },
            motionclip: MotionClip {
                enabled: false,
                interval: 30,
                duration: 5,
            },
            recording: Span {
                enabled: false,
                duration: None,
            },
            replay: Span {
                enabled: false,
                duration: Some(300),
            },
        }
    }
}

/// A range violation, named by its setting (`thumbnail.interval`) so forms can show it next to the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), FieldError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(FieldError {
            field: field.to_string(),
            message: format!("{field} must be between {min} and {max} seconds (got {value})"),
        })
    }
}

fn check_duration(field: &str, value: Option<i64>) -> Result<(), FieldError> {
    match value {
        Some(v) if v < DURATION_MIN => Err(FieldError {
            field: field.to_string(),
            message: format!(
                "{field} must be at least {DURATION_MIN} second or null for the whole stream (got {v})"
            ),
        }),
        _ => Ok(()),
    }
}

impl Processing {
    /// Every range rule, in form order; returns all violations so a form can mark each field.
    pub fn violations(&self) -> Vec<FieldError> {
        [
            check_range(
                "thumbnail.interval",
                self.thumbnail.interval,
                INTERVAL_MIN,
                INTERVAL_MAX,
            ),
            check_range(
                "motionclip.interval",
                self.motionclip.interval,
                INTERVAL_MIN,
                INTERVAL_MAX,
            ),
            check_range(
                "motionclip.duration",
                self.motionclip.duration,
                CLIP_DURATION_MIN,
                CLIP_DURATION_MAX,
            ),
            check_duration("recording.duration", self.recording.duration),
            check_duration("replay.duration", self.replay.duration),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect()
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        self.violations().into_iter().next().map_or(Ok(()), Err)
    }

    pub fn any_enabled(&self) -> bool {
        self.thumbnail.enabled
            || self.motionclip.enabled
            || self.recording.enabled
            || self.replay.enabled
    }

    /// The same settings with every process off (a session without the package).
    pub fn all_off(mut self) -> Processing {
        self.thumbnail.enabled = false;
        self.motionclip.enabled = false;
        self.recording.enabled = false;
        self.replay.enabled = false;
        self
    }

    /// Whether `self` turns on a process that `before` had off (what a package without live
    /// processing may not do).
    pub fn enables_more_than(&self, before: &Processing) -> bool {
        (self.thumbnail.enabled && !before.thumbnail.enabled)
            || (self.motionclip.enabled && !before.motionclip.enabled)
            || (self.recording.enabled && !before.recording.enabled)
            || (self.replay.enabled && !before.replay.enabled)
    }

    pub fn enabled_names(&self) -> Vec<&'static str> {
        let on = [
            self.thumbnail.enabled,
            self.motionclip.enabled,
            self.recording.enabled,
            self.replay.enabled,
        ];
        PROCESSES
            .iter()
            .zip(on)
            .filter_map(|(n, on)| on.then_some(*n))
            .collect()
    }

    pub fn apply(&mut self, patch: &ProcessingPatch) {
        if let Some(p) = &patch.thumbnail {
            set(&mut self.thumbnail.enabled, p.enabled);
            set(&mut self.thumbnail.interval, p.interval);
        }
        if let Some(p) = &patch.motionclip {
            set(&mut self.motionclip.enabled, p.enabled);
            set(&mut self.motionclip.interval, p.interval);
            set(&mut self.motionclip.duration, p.duration);
        }
        for (target, p) in [
            (&mut self.recording, &patch.recording),
            (&mut self.replay, &patch.replay),
        ] {
            if let Some(p) = p {
                set(&mut target.enabled, p.enabled);
                set(&mut target.duration, p.duration);
            }
        }
    }
}

fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

/// A partial `processing` object: processes and fields left out keep their settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProcessingPatch {
    #[serde(default)]
    pub thumbnail: Option<ThumbnailPatch>,
    #[serde(default)]
    pub motionclip: Option<MotionClipPatch>,
    #[serde(default)]
    pub recording: Option<SpanPatch>,
    #[serde(default)]
    pub replay: Option<SpanPatch>,
}

impl From<Processing> for ProcessingPatch {
    fn from(p: Processing) -> Self {
        ProcessingPatch {
            thumbnail: Some(ThumbnailPatch {
                enabled: Some(p.thumbnail.enabled),
                interval: Some(p.thumbnail.interval),
            }),
            motionclip: Some(MotionClipPatch {
                enabled: Some(p.motionclip.enabled),
                interval: Some(p.motionclip.interval),
                duration: Some(p.motionclip.duration),
            }),
            recording: Some(p.recording.into()),
            replay: Some(p.replay.into()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ThumbnailPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub interval: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MotionClipPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub interval: Option<i64>,
    #[serde(default)]
    pub duration: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SpanPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Left out: unchanged. `null`: the whole stream. A number: seconds.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "db", schema(value_type = Option<i64>))]
    pub duration: Option<Option<i64>>,
}

impl From<Span> for SpanPatch {
    fn from(s: Span) -> Self {
        SpanPatch {
            enabled: Some(s.enabled),
            duration: Some(s.duration),
        }
    }
}

/// Tells a field given as `null` (Some(None)) from one left out (None, by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Transcoding profiles a stream group may ask for; `passthrough` always exists.
pub const PROFILES: [&str; 6] = ["passthrough", "1080p", "720p", "480p", "360p", "240p"];

/// Output height of a profile, for the dashboard's "Quality" column (None = source).
pub fn profile_quality(profile: &str) -> &'static str {
    match profile {
        "1080p" => "1920×1080",
        "720p" => "1280×720",
        "480p" => "854×480",
        "360p" => "640×360",
        "240p" => "426×240",
        _ => "source",
    }
}

/// A transcoding profile's rendition: its height (width follows the source's aspect) and its
/// video bitrate in kbit/s. None for `passthrough`, which is the source itself.
pub fn profile_rung(profile: &str) -> Option<(u32, u32)> {
    Some(match profile {
        "1080p" => (1080, 4500),
        "720p" => (720, 2500),
        "480p" => (480, 1200),
        "360p" => (360, 700),
        "240p" => (240, 400),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Processing::default().validate(), Ok(()));
    }

    #[test]
    fn ranges_name_setting_and_bounds() {
        let mut p = Processing::default();
        p.thumbnail.interval = 9;
        let e = p.validate().unwrap_err();
        assert_eq!(e.field, "thumbnail.interval");
        assert!(e.message.contains("between 10 and 3600"), "{}", e.message);
        p.thumbnail.interval = 3600;
        p.motionclip.duration = 61;
        assert_eq!(p.validate().unwrap_err().field, "motionclip.duration");
        p.motionclip.duration = 60;
        p.motionclip.interval = 3601;
        assert_eq!(p.validate().unwrap_err().field, "motionclip.interval");
        p.motionclip.interval = 10;
        p.recording.duration = Some(0);
        assert_eq!(p.validate().unwrap_err().field, "recording.duration");
        p.recording.duration = None;
        p.replay.duration = Some(-5);
        assert_eq!(p.validate().unwrap_err().field, "replay.duration");
        p.replay.duration = Some(1);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn patch_keeps_what_is_left_out_and_tells_null_from_absent() {
        let mut p = Processing::default();
        p.recording.duration = Some(60);
        let patch: ProcessingPatch =
            serde_json::from_str(r#"{"thumbnail":{"enabled":true},"replay":{"duration":null}}"#)
                .unwrap();
        p.apply(&patch);
        assert!(p.thumbnail.enabled);
        assert_eq!(p.thumbnail.interval, 10);
        assert_eq!(p.recording.duration, Some(60));
        assert_eq!(p.replay.duration, None);
        let patch: ProcessingPatch =
            serde_json::from_str(r#"{"recording":{"enabled":true}}"#).unwrap();
        p.apply(&patch);
        assert_eq!(p.recording.duration, Some(60));
        assert!(p.recording.enabled);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<ProcessingPatch>(r#"{"thumbnails":{}}"#).is_err());
    }

    #[test]
    fn enabling_is_detected() {
        let before = Processing::default();
        let mut after = before;
        assert!(!after.enables_more_than(&before));
        after.replay.enabled = true;
        assert!(after.enables_more_than(&before));
        assert_eq!(after.enabled_names(), vec!["replay"]);
    }
}
