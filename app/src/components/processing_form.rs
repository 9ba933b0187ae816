//! The live-processing settings of one stream: a toggle per process and its settings, with range
//! errors shown next to their fields as the user types. Used by "New stream" (one per profile tab)
//! and by the "Edit options" dialog.

use domain::settings::Span;
use domain::settings::{
    profile_quality, CLIP_DURATION_MAX, CLIP_DURATION_MIN, INTERVAL_MAX, INTERVAL_MIN,
};
use domain::{FieldError, Processing};
use leptos::prelude::*;

/// The message for `field`: a range rule broken by the current values, else a server error.
fn field_error(
    settings: RwSignal<Processing>,
    server: Signal<Option<FieldError>>,
    field: &'static str,
) -> impl Fn() -> Option<String> + Send + Sync + 'static {
    move || {
        settings
            .with(|s| s.violations())
            .into_iter()
            .chain(server.get())
            .find(|e| e.field == field)
            .map(|e| e.message)
    }
}

#[component]
fn Toggle(
    id: String,
    #[prop(into)] label: String,
    checked: bool,
    disabled: bool,
    on_change: impl Fn(bool) + 'static,
) -> impl IntoView {
    let label_for = id.clone();
    view! {
        <label class="toggle" for=label_for>
            <input
                id=id
                type="checkbox"
                role="switch"
                // The attribute serves the page before wasm; the property keeps a re-used input
                // right when the same form is rebuilt for another profile tab.
                checked=checked
                prop:checked=checked
                disabled=disabled
                on:change=move |ev| on_change(event_target_checked(&ev))
            />
            <span>{label}</span>
        </label>
    }
}

/// A seconds field. `optional` fields may be left empty (= whole stream).
#[component]
fn Seconds(
    id: String,
    #[prop(into)] label: String,
    #[prop(into)] hint: String,
    value: Option<i64>,
    optional: bool,
    disabled: bool,
    error: impl Fn() -> Option<String> + Send + Sync + 'static,
    on_change: impl Fn(Option<i64>) + 'static,
) -> impl IntoView {
    let error_id = format!("{id}-error");
    let described_by = error_id.clone();
    let label_for = id.clone();
    let error = Signal::derive(error);
    let text = value.map(|v| v.to_string()).unwrap_or_default();
    view! {
        <div class="field" class:invalid=move || error.get().is_some()>
            <label for=label_for>{label}</label>
            <input
                id=id
                type="number"
                inputmode="numeric"
                step="1"
                placeholder=if optional { "whole stream" } else { "" }
                value=text.clone()
                prop:value=text
                disabled=disabled
                aria-describedby=described_by
                on:input=move |ev| {
                    let text = event_target_value(&ev);
                    let text = text.trim();
                    on_change(if text.is_empty() && optional {
                        None
                    } else {
                        // Unparsable text counts as 0 so the range message explains it.
                        Some(text.parse::<i64>().unwrap_or(0))
                    });
                }
            />
            <span class="hint">{hint}</span>
            <p class="field-error" id=error_id role="alert">{move || error.get()}</p>
        </div>
    }
}

#[component]
pub fn ProcessingForm(
    settings: RwSignal<Processing>,
    /// Prefix of element ids, unique per form on the page.
    #[prop(into)]
    id_prefix: String,
    #[prop(optional)] disabled: bool,
    /// A range error the server reported for this stream.
    #[prop(into, optional)]
    server_error: Signal<Option<FieldError>>,
) -> impl IntoView {
    let s = settings.get_untracked();
    let id = |name: &str| format!("{id_prefix}-{name}");
    let err = |field| field_error(settings, server_error, field);
    let interval_hint = format!("{INTERVAL_MIN}–{INTERVAL_MAX} s");
    let clip_hint = format!("{CLIP_DURATION_MIN}–{CLIP_DURATION_MAX} s");
    view! {
        <div class="processing-form">
            <fieldset class="process">
                <legend>"Thumbnail"</legend>
                <Toggle id=id("thumbnail-enabled") label="Thumbnails" checked=s.thumbnail.enabled disabled
                    on_change=move |on| settings.update(|s| s.thumbnail.enabled = on)/>
                <Seconds id=id("thumbnail-interval") label="Interval (s)" hint=interval_hint.clone()
                    value=Some(s.thumbnail.interval) optional=false disabled
                    error=err("thumbnail.interval")
                    on_change=move |v| settings.update(|s| s.thumbnail.interval = v.unwrap_or(0))/>
            </fieldset>
            <fieldset class="process">
                <legend>"Motion clip"</legend>
                <Toggle id=id("motionclip-enabled") label="Motion clips" checked=s.motionclip.enabled disabled
                    on_change=move |on| settings.update(|s| s.motionclip.enabled = on)/>
                <Seconds id=id("motionclip-interval") label="Interval (s)" hint=interval_hint
                    value=Some(s.motionclip.interval) optional=false disabled
                    error=err("motionclip.interval")
                    on_change=move |v| settings.update(|s| s.motionclip.interval = v.unwrap_or(0))/>
                <Seconds id=id("motionclip-duration") label="Duration (s)" hint=clip_hint
                    value=Some(s.motionclip.duration) optional=false disabled
                    error=err("motionclip.duration")
                    on_change=move |v| settings.update(|s| s.motionclip.duration = v.unwrap_or(0))/>
            </fieldset>
            <SpanProcess settings name="recording" legend="Recording" id=id("recording") disabled
                server_error span=|p| &mut p.recording/>
            <SpanProcess settings name="replay" legend="Replay" id=id("replay") disabled
                server_error span=|p| &mut p.replay/>
        </div>
    }
}

/// Recording and replay: a toggle and a duration that may be empty (= whole stream).
#[component]
fn SpanProcess(
    settings: RwSignal<Processing>,
    name: &'static str,
    legend: &'static str,
    id: String,
    disabled: bool,
    server_error: Signal<Option<FieldError>>,
    span: fn(&mut Processing) -> &mut Span,
) -> impl IntoView {
    let initial = *span(&mut settings.get_untracked());
    let field = match name {
        "recording" => "recording.duration",
        _ => "replay.duration",
    };
    view! {
        <fieldset class="process">
            <legend>{legend}</legend>
            <Toggle id=format!("{id}-enabled") label=legend checked=initial.enabled disabled
                on_change=move |on| settings.update(|p| span(p).enabled = on)/>
            <Seconds id=format!("{id}-duration") label="Duration (s)" hint="≥ 1 s; empty = whole stream"
                value=initial.duration optional=true disabled
                error=field_error(settings, server_error, field)
                on_change=move |v| settings.update(|p| span(p).duration = v)/>
        </fieldset>
    }
}

/// One line per process that is on, e.g. "Thumbnail every 10 s".
pub fn describe(p: &Processing) -> Vec<String> {
    let span = |d: Option<i64>| match d {
        Some(d) => format!("{d} s"),
        None => "whole stream".into(),
    };
    let mut out = Vec::new();
    if p.thumbnail.enabled {
        out.push(format!("Thumbnail every {} s", p.thumbnail.interval));
    }
    if p.motionclip.enabled {
        out.push(format!(
            "Motion clip of {} s every {} s",
            p.motionclip.duration, p.motionclip.interval
        ));
    }
    if p.recording.enabled {
        out.push(format!("Recording: {}", span(p.recording.duration)));
    }
    if p.replay.enabled {
        out.push(format!("Replay: {}", span(p.replay.duration)));
    }
    out
}

/// The summary box: each profile with its processes.
#[component]
pub fn Summary(profiles: Signal<Vec<(String, Processing)>>) -> impl IntoView {
    view! {
        <aside class="card summary" aria-label="Summary">
            <h3>"Summary"</h3>
            <ul>
                {move || profiles.get().into_iter().map(|(profile, p)| {
                    let lines = describe(&p);
                    let text = if lines.is_empty() { "no live processing".to_string() } else { lines.join(" · ") };
                    view! {
                        <li data-profile=profile.clone()>
                            <strong>{profile.clone()}</strong>" ("{profile_quality(&profile)}"): "{text}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </aside>
    }
}
