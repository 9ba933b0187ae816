//! `/stream/ID`: the stream overview: ingest, and the Live Processing section with a tab per
//! stream of the group, refresh, the "Edit options" dialog and a details table per process.

use domain::settings::{profile_quality, PROFILES};
use domain::view::{Me, MotionClipEntry, StreamView, ThumbnailEntry, WebEntry};
use domain::Processing;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{
    more_history, more_recordings, more_replays, stream_group, whoami, SaveProcessing, SaveProfiles,
};
use crate::components::layout::Layout;
use crate::components::live_events::follow_events;
use crate::components::load_more::{load_more, Pager};
use crate::components::processing_form::ProcessingForm;
use crate::components::{CopyButton, ErrorNote, Tabs};

#[component]
pub fn StreamPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let group = Resource::new(id, stream_group);
    let who = Resource::new(|| (), |_| whoami());
    // Kept across refetches: the profile tab shown and whether a dialog is open.
    let active = RwSignal::new(String::new());
    let editing = RwSignal::new(false);
    let editing_profiles = RwSignal::new(false);
    // Live: an event about one of the group's streams reloads the data (not while a dialog
    // is open, so that an edit in progress stays as it is). Not on `stream.updated`: this
    // page's own saves answer the new settings, and the refetch their events would start
    // could land after a dialog opened and reset what is being typed.
    follow_events(
        move |e| {
            let shown = |id: &String| {
                group
                    .get_untracked()
                    .and_then(Result::ok)
                    .is_some_and(|g| g.iter().any(|s| &s.id == id))
            };
            !editing.get_untracked()
                && !editing_profiles.get_untracked()
                && e.kind != "stream.updated"
                && e.stream_id.as_ref().is_some_and(shown)
        },
        move || group.refetch(),
    );
    view! {
        <Layout>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let me = who.await;
                    match group.await {
                        Ok(streams) => {
                            let can_edit = me.as_ref().map(Me::can_edit).unwrap_or(false);
                            let upgrade = me
                                .as_ref()
                                .is_ok_and(|m| !m.organisation.live_processing_enabled());
                            view! { <Overview streams can_edit upgrade active editing editing_profiles refetch=move || group.refetch()/> }.into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </Layout>
    }
}

#[component]
fn Overview(
    streams: Vec<StreamView>,
    can_edit: bool,
    /// The organisation lacks the live-processing package.
    upgrade: bool,
    /// The profile tab shown (empty: the passthrough stream's).
    active: RwSignal<String>,
    editing: RwSignal<bool>,
    editing_profiles: RwSignal<bool>,
    refetch: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let head = streams[0].clone();
    let title = if head.name.is_empty() {
        head.streamname.clone()
    } else {
        head.name.clone()
    };
    let profiles: Vec<String> = streams.iter().map(|s| s.profile.clone()).collect();
    if !profiles.contains(&active.get_untracked()) {
        active.set(head.profile.clone());
    }
    let streams = StoredValue::new(streams);
    let current = move || {
        let profile = active.get();
        streams.with_value(|s| {
            s.iter()
                .find(|s| s.profile == profile)
                .unwrap_or(&s[0])
                .clone()
        })
    };
    let refresh = refetch.clone();
    view! {
        <Title text=title.clone()/>
        <div class="page-head">
            <h1>{title}</h1>
            <span class=format!("badge {}", head.state)>{head.state.clone()}</span>
        </div>
        <section class="card ingest" aria-label="Ingest">
            <h2>"Ingest"</h2>
            <dl class="kv">
                <dt>"RTMP URL"</dt>
                <dd><code data-testid="ingest-url">{head.ingest.rtmp.url.clone()}</code>
                    <CopyButton text=head.ingest.rtmp.url.clone() label="Copy RTMP URL"/></dd>
                <dt>"RTMP URL with recording"</dt>
                <dd><code data-testid="ingest-rec-url">{head.ingest.rtmp.rec_url.clone()}</code>
                    <CopyButton text=head.ingest.rtmp.rec_url.clone() label="Copy RTMP recording URL"/>
                    <span class="muted">" records every session, whatever the settings say"</span></dd>
                {head.ingest.rtmps.clone().map(|r| view! {
                    <dt>"RTMPS URL"</dt>
                    <dd><code data-testid="ingest-rtmps-url">{r.url.clone()}</code>
                        <CopyButton text=r.url label="Copy RTMPS URL"/></dd>
                })}
                {head.ingest.srt.clone().map(|srt| view! {
                    <dt>"SRT URL"</dt>
                    <dd><code data-testid="ingest-srt-url">{srt.url.clone()}</code>
                        <CopyButton text=srt.url label="Copy SRT URL"/>
                        <span class="muted">" MPEG-TS with H.264 + AAC; stream ID "</span>
                        <code>{srt.streamid}</code></dd>
                })}
                <dt>"Stream name"</dt>
                <dd><code data-testid="ingest-streamname">{head.ingest.rtmp.streamname.clone()}</code>
                    <CopyButton text=head.ingest.rtmp.streamname.clone() label="Copy stream name"/></dd>
                {head.ingest.source.clone().map(|s| {
                    let state = head.ingest.source_state.clone();
                    view! {
                        <dt>"RTSP source"</dt>
                        <dd><code>{s}</code>" "
                            {state.map(|st| view! {
                                <span class=format!("badge {}", st.state) data-testid="source-state">{st.state.clone()}</span>
                                {st.last_error.map(|e| view! { <span class="muted">" "{e}</span> })}
                            })}
                        </dd>
                    }
                })}
                <dt>"Stream group"</dt>
                <dd><code>{head.streamgroup.clone()}</code></dd>
            </dl>
        </section>

        <section class="card live" aria-labelledby="live-title">
            <div class="section-head">
                <h2 id="live-title">"Live"</h2>
                <a class="button secondary" href=format!("/playout/{}", head.id)>"Open player"</a>
            </div>
            {match head.live.clone() {
                Some(l) => view! {
                    <dl class="kv stats" data-testid="live-stats">
                        <dt>"Bitrate"</dt><dd>{format!("{:.0} kbit/s", l.bitrate_kbps)}</dd>
                        <dt>"Frame rate"</dt><dd>{format!("{:.1} fps", l.fps)}</dd>
                        <dt>"Keyframe interval"</dt><dd>{l.keyframe_interval_ms.map(|k| format!("{:.2} s", k as f64 / 1000.0)).unwrap_or_else(|| "—".into())}</dd>
                        <dt>"Dropped frames"</dt><dd>{l.dropped_frames}</dd>
                        <dt>"Bus lag"</dt><dd>{l.bus_lag}</dd>
                        <dt>"Live for"</dt><dd>{format!("{:.0} s", l.uptime_seconds)}</dd>
                    </dl>
                    {(!l.process_errors.is_empty()).then(|| view! {
                        <div class="note error" role="alert" data-testid="process-errors">
                            <p>"Stopped, retrying by themselves (live playout goes on):"</p>
                            <ul>
                                {l.process_errors.iter().map(|(process, error)| view! {
                                    <li><strong>{process_label(process)}</strong>": "{error.clone()}</li>
                                }).collect_view()}
                            </ul>
                        </div>
                    })}
                }.into_any(),
                None => view! { <p class="muted">"Idle: no ingest right now. Push to the RTMP URL above to go live."</p> }.into_any(),
            }}
            {head.sessions.first().cloned().map(|s| view! {
                <p class="muted" data-testid="last-session">"Last session: "{s.started_at.clone()}
                    {s.video_codec.map(|v| format!(" · {v}")).unwrap_or_default()}
                    {s.width.map(|w| format!(" {w}×{}", s.height.unwrap_or_default())).unwrap_or_default()}
                    {s.audio_codec.map(|a| format!(" · {a}")).unwrap_or_default()}
                    {s.ended_at.map(|e| format!(" · ended {e}")).unwrap_or_default()}
                    {s.end_reason.map(|r| format!(" ({r})")).unwrap_or_default()}
                </p>
                {(!s.warnings.is_empty()).then(|| view! {
                    <div class="note error" role="alert" data-testid="session-warnings">
                        <p>"This session dropped or refused:"</p>
                        <ul>{s.warnings.into_iter().map(|w| view! { <li>{w}</li> }).collect_view()}</ul>
                    </div>
                })}
            })}
        </section>

        <section class="card live-processing" aria-labelledby="lp-title">
            <div class="section-head">
                <h2 id="lp-title">"Live Processing"</h2>
                <div class="head-actions">
                    <button type="button" class="icon" aria-label="Refresh" title="Refresh"
                        on:click=move |_| refresh()>"↻"</button>
                    {can_edit.then(|| view! {
                        <button type="button" class="secondary" on:click=move |_| editing_profiles.set(true)>"Transcoding"</button>
                        <button type="button" class="secondary" on:click=move |_| editing.set(true)>"Edit options"</button>
                    })}
                </div>
            </div>
            {(!can_edit).then(|| view! { <p class="muted">"Your key is read only: you can see the settings but not change them."</p> })}
            {upgrade.then(|| view! {
                <p class="note warn" role="status" data-testid="upgrade-needed">"Live processing: Upgrade needed. Your organisation's package does not include it: no process runs at ingest, and processes cannot be enabled."</p>
            })}
            <Tabs labels=profiles active/>
            {move || {
                let s = current();
                view! { <StreamProcessing stream=s/> }
            }}
        </section>

        {
            let refetch = refetch.clone();
            move || editing.get().then(|| {
                let refetch = refetch.clone();
                view! {
                    <EditDialog
                        streams=streams.get_value()
                        upgrade
                        on_close=move |saved| { editing.set(false); if saved { refetch(); } }/>
                }
            })
        }
        {move || editing_profiles.get().then(|| {
            let refetch = refetch.clone();
            view! {
                <ProfilesDialog
                    streams=streams.get_value()
                    on_close=move |saved| { editing_profiles.set(false); if saved { refetch(); } }/>
            }
        })}
    }
}

/// The processes of one stream: previews (filled by the processes as they land) and details.
/// One stream's live processing as the overview shows it: previews, the process table with its
/// URLs, replays and recordings. Read only (the overview adds the edit controls around it);
/// `/playout/ID` shows it too.
#[component]
pub(crate) fn StreamProcessing(stream: StreamView) -> impl IntoView {
    let p = stream.processing.settings;
    // What the last session really was: its picture size and frame rate (measured while
    // live, kept when it ended); the profile's nominal size before any session.
    let last = stream.sessions.first();
    let fps = match (stream.live.as_ref(), last) {
        (Some(l), _) if l.fps > 0.0 => Some(l.fps),
        (None, Some(s)) => s.fps,
        _ => None,
    };
    let quality = match last.and_then(|s| Some((s.width?, s.height?))) {
        Some((w, h)) => match fps {
            Some(f) => format!("{w}×{h} {f:.0} fps"),
            None => format!("{w}×{h}"),
        },
        None => profile_quality(&stream.profile).to_string(),
    };
    let latest_thumb = stream.playout.thumbnails.iter().find_map(|t| match t {
        ThumbnailEntry::Link(l) if l.kind == "latest" && stream.asset_counts.thumbnail > 0 => {
            Some(l.url.clone())
        }
        _ => None,
    });
    let latest_clip = stream.playout.motionclip.iter().find_map(|t| match t {
        MotionClipEntry::Link(l) if l.kind == "latest" && stream.asset_counts.motionclip > 0 => {
            Some(l.url.clone())
        }
        _ => None,
    });
    // When the previews were made: an idle stream shows its last session's, with their time.
    let short = |t: &str| {
        t.replace('T', " ")
            .trim_end_matches('Z')
            .chars()
            .take(19)
            .collect::<String>()
    };
    let newest_thumb = stream.playout.thumbnails.iter().find_map(|t| match t {
        ThumbnailEntry::Image(i) => Some(short(&i.created_at)),
        _ => None,
    });
    let newest_clip = stream.playout.motionclip.iter().find_map(|t| match t {
        MotionClipEntry::Clip(c) => Some(short(&c.created_at)),
        _ => None,
    });
    let vods: Vec<_> = stream
        .playout
        .web
        .iter()
        .filter_map(|w| match w {
            WebEntry::Vod(v) => Some(v.clone()),
            _ => None,
        })
        .collect();
    // The stable `latest` URL of each history process (what the documents' URL column shows)
    // and its newest entries (the expanded row's resource links).
    let latest_url = |name: &str| -> Option<String> {
        match name {
            "thumbnail" => stream.playout.thumbnails.iter().find_map(|t| match t {
                ThumbnailEntry::Link(l) if l.kind == "latest" => Some(l.url.clone()),
                _ => None,
            }),
            "motionclip" => stream.playout.motionclip.iter().find_map(|t| match t {
                MotionClipEntry::Link(l) if l.kind == "latest" => Some(l.url.clone()),
                _ => None,
            }),
            _ => None,
        }
    };
    let history = |name: &str| -> Vec<(String, String)> {
        match name {
            "thumbnail" => stream
                .playout
                .thumbnails
                .iter()
                .filter_map(|t| match t {
                    ThumbnailEntry::Image(i) => Some((i.created_at.clone(), i.url.clone())),
                    _ => None,
                })
                .collect(),
            "motionclip" => stream
                .playout
                .motionclip
                .iter()
                .filter_map(|t| match t {
                    MotionClipEntry::Clip(c) => Some((c.created_at.clone(), c.url.clone())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let row = |name: &'static str,
               active: bool,
               interval: Option<i64>,
               duration: String,
               count: i64| {
        let latest = latest_url(name);
        let links = Pager::new(history(name), count);
        let list = if name == "thumbnail" {
            "thumbnails"
        } else {
            "motionclips"
        };
        let id = stream.id.clone();
        let fetch = move |cursor| more_history(id.clone(), list.to_string(), cursor);
        let label = match name {
            "thumbnail" => "Thumbnail",
            "motionclip" => "Motion Clip",
            "recording" => "Recording",
            _ => "Replay",
        };
        view! {
            <tr data-process=name>
                <th scope="row">{label}</th>
                <td><span class=if active { "state on" } else { "state off" }>{if active { "Active" } else { "Inactive" }}</span></td>
                <td><code>{stream.streamname.clone()}</code></td>
                <td data-col="quality">{quality.clone()}</td>
                <td data-col="interval">{interval.map(|i| i.to_string()).unwrap_or_else(|| "—".into())}</td>
                <td data-col="duration">{duration}</td>
                <td data-col="assets">{count}</td>
                <td data-col="url">{match latest.clone() {
                    Some(url) => view! {
                        <code class="url" data-testid=format!("{name}-latest-url")>{url.clone()}</code>
                        <CopyButton text=url label=format!("Copy the latest {label} URL")/>
                    }.into_any(),
                    None => view! { <span class="muted">"—"</span> }.into_any(),
                }}</td>
            </tr>
            {latest.map(|url| view! {
                <tr class="resources" data-resources=name>
                    <td colspan="8">
                        <details>
                            <summary>{format!("{label} resource links")}</summary>
                            <ul class="links">
                                <li>"Latest (always the newest): "<a href=url.clone()>{url.clone()}</a></li>
                                {move || links.items.get().into_iter().map(|(at, u)| view! {
                                    <li>{at.replace('T', " ").trim_end_matches('Z').chars().take(19).collect::<String>()}
                                        " "<a href=u.clone()>{u.clone()}</a></li>
                                }).collect_view()}
                            </ul>
                            {load_more(links, list, fetch)}
                        </details>
                    </td>
                </tr>
            })}
        }
    };
    let span = |d: Option<i64>| {
        d.map(|d| d.to_string())
            .unwrap_or_else(|| "whole stream".into())
    };
    view! {
        <div class="stream-processing" data-profile=stream.profile.clone()>
            {(stream.profile != "passthrough").then(|| rendition(&stream))}
            {stream.processing.pending.then(|| view! {
                <p class="note warn" role="status">"Saved changes apply at this stream's next ingest; the live session keeps its settings until then."</p>
            })}
            <div class="previews">
                <figure class="preview">
                    {match latest_thumb {
                        Some(url) => view! { <img src=url alt="Latest thumbnail"/> }.into_any(),
                        None => view! { <div class="placeholder">"No thumbnail yet"</div> }.into_any(),
                    }}
                    <figcaption>"Thumbnail"{newest_thumb.map(|t| view! { <span class="muted" data-testid="thumbnail-time">" · "{t}" UTC"</span> })}</figcaption>
                </figure>
                <figure class="preview">
                    {match latest_clip {
                        Some(url) => view! { <img src=url alt="Latest motion clip"/> }.into_any(),
                        None => view! { <div class="placeholder">"No motion clip yet"</div> }.into_any(),
                    }}
                    <figcaption>"Motion clip"{newest_clip.map(|t| view! { <span class="muted" data-testid="motionclip-time">" · "{t}" UTC"</span> })}</figcaption>
                </figure>
            </div>
            <div class="table-wrap">
                <table class="details">
                    <thead><tr>
                        <th>"Process"</th><th>"Active"</th><th>"Stream name"</th><th>"Quality"</th>
                        <th>"Interval (s)"</th><th>"Duration (s)"</th><th>"Assets"</th><th>"URL"</th>
                    </tr></thead>
                    <tbody>
                        {row("thumbnail", p.thumbnail.enabled, Some(p.thumbnail.interval), "—".into(), stream.asset_counts.thumbnail)}
                        {row("motionclip", p.motionclip.enabled, Some(p.motionclip.interval), p.motionclip.duration.to_string(), stream.asset_counts.motionclip)}
                        {row("recording", p.recording.enabled, None, span(p.recording.duration), stream.asset_counts.recording)}
                        {row("replay", p.replay.enabled, None, span(p.replay.duration), stream.asset_counts.replay)}
                    </tbody>
                </table>
            </div>
            <h3>"Live Replay"</h3>
            {if stream.playout.replay.is_empty() {
                view! { <p class="muted">"No replay sessions yet."</p> }.into_any()
            } else {
                let latest = stream.playout.replay.first().map(|r| r.url.clone());
                let replays = Pager::new(stream.playout.replay.clone(), stream.asset_counts.replay);
                let id = stream.id.clone();
                view! {
                    <div class="table-wrap">
                        <table class="details replay">
                            <thead><tr><th>"Session date (UTC)"</th><th>"HLS file"</th><th>"Rewatch"</th><th>"Clip & Share"</th><th>"Viewer page"</th></tr></thead>
                            <tbody>
                                {move || replays.items.get().into_iter().map(|r| view! {
                                    <tr data-session=r.session_id.clone()>
                                        <td>{r.started_at.replace('T', " ").trim_end_matches('Z').chars().take(19).collect::<String>()}
                                            {r.ended_at.is_none().then_some(" (live)")}</td>
                                        <td><a href=r.hls.clone()>"index.m3u8"</a></td>
                                        <td><a href=format!("/replay/{}", r.session_id)>"Rewatch"</a></td>
                                        <td><a href=format!("/replay/{}#clip", r.session_id)>"Clip & Share"</a></td>
                                        <td><a href=r.watch.clone() data-testid="replay-watch">"Watch"</a>
                                            " "<CopyButton text=r.watch.clone() label="Copy the viewer page URL"/></td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                    {load_more(replays, "replays", move |cursor| more_replays(id.clone(), cursor))}
                    {latest.map(|u| view! {
                        <p class="actions">
                            <a href=u.clone()>"Rewatch the latest session"</a>
                            <a href=format!("{u}#clip") data-testid="clip-latest">"Clip & Share latest live session"</a>
                        </p>
                    })}
                }.into_any()
            }}
            <h3>"Recordings"</h3>
            {if vods.is_empty() {
                view! { <p class="muted">"No recordings yet."</p> }.into_any()
            } else {
                let newest = vods.iter().find(|v| v.status == "ready").map(|v| v.url.clone());
                let recordings = Pager::new(vods, stream.asset_counts.recording);
                let id = stream.id.clone();
                view! {
                    {newest.map(|u| view! {
                        <video class="vod" controls preload="metadata" src=u data-testid="recording-player"></video>
                    })}
                    <div class="table-wrap">
                        <table class="details recordings">
                            <thead><tr><th>"Session date (UTC)"</th><th>"Recording file"</th><th>"Duration"</th><th>"Size"</th></tr></thead>
                            <tbody>
                                {move || recordings.items.get().into_iter().map(|v| view! {
                                    <tr data-recording=v.index>
                                        <td>{v.created_at.replace('T', " ").trim_end_matches('Z').chars().take(19).collect::<String>()}
                                            {(v.status != "ready").then(|| format!(" ({})", v.status))}</td>
                                        <td>
                                            <a href=v.url.clone() class="url">{v.url.rsplit('/').next().unwrap_or_default().to_string()}</a>
                                            " "<CopyButton text=v.url.clone() label="Copy the recording URL"/>
                                            " "<a href=v.url.clone() download="">"Download"</a>
                                        </td>
                                        <td>{v.duration.map(|d| format!("{d:.1} s")).unwrap_or_else(|| "—".into())}</td>
                                        <td>{v.size.map(|b| format!("{:.1} MB", b as f64 / 1e6)).unwrap_or_else(|| "—".into())}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                    {load_more(recordings, "recordings", move |cursor| more_recordings(id.clone(), cursor))}
                }.into_any()
            }}
        </div>
    }
}

/// Edits every stream of the group at once; nothing is saved before Confirm.
#[component]
fn EditDialog(
    streams: Vec<StreamView>,
    /// Without the package the processes cannot be changed here.
    upgrade: bool,
    on_close: impl Fn(bool) + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let live = streams.iter().any(StreamView::is_live);
    let drafts: Vec<(StreamView, RwSignal<Processing>)> = streams
        .into_iter()
        .map(|s| {
            let p = s.processing.settings;
            (s, RwSignal::new(p))
        })
        .collect();
    let labels: Vec<String> = drafts.iter().map(|(s, _)| s.profile.clone()).collect();
    let active = RwSignal::new(labels[0].clone());
    let drafts = StoredValue::new(drafts);
    let save = ServerAction::<SaveProcessing>::new();
    let invalid = move || {
        drafts.with_value(|d| {
            d.iter()
                .any(|(_, s)| !s.with(|s| s.violations().is_empty()))
        })
    };
    let confirm = move |_| {
        let edits = drafts.with_value(|d| {
            d.iter()
                .map(|(s, p)| (s.id.clone(), p.get_untracked()))
                .collect::<Vec<_>>()
        });
        save.dispatch(SaveProcessing { edits });
    };
    let close = on_close.clone();
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            close(true);
        }
    });
    // "Sync settings across profiles", as on creation: the open tab's settings go to every
    // profile's draft (nothing is saved before Confirm).
    let synced = RwSignal::new(None::<String>);
    let profiles = labels.len();
    let sync = move |_| {
        let from = active.get_untracked();
        drafts.with_value(|d| {
            if let Some((_, source)) = d.iter().find(|(s, _)| s.profile == from) {
                let value = source.get_untracked();
                d.iter().for_each(|(_, p)| p.set(value));
            }
        });
        synced.set(Some(from));
    };
    let error = move || save.value().get().and_then(Result::err);
    let server_field = Signal::derive(move || error().and_then(|e| e.field_error()));
    let cancel = on_close.clone();
    view! {
        <div class="overlay">
            <div class="dialog card" role="dialog" aria-modal="true" aria-labelledby="edit-title">
                <h2 id="edit-title">"Edit live processing"</h2>
                <p class="note info">
                    {if live {
                        "This stream is live: changes apply at its next ingest (stop and restart the stream)."
                    } else {
                        "Changes apply at the stream's next ingest."
                    }}
                </p>
                {(profiles > 1).then(|| view! {
                    <div class="section-head">
                        <button type="button" class="secondary" on:click=sync>"Sync settings across profiles"</button>
                    </div>
                })}
                {move || synced.get().map(|from| view! {
                    <p class="note ok" role="status">"Settings of "{from}" copied to every profile."</p>
                })}
                <Tabs labels active/>
                {move || {
                    let profile = active.get();
                    drafts.with_value(|d| {
                        let (s, p) = d.iter().find(|(s, _)| s.profile == profile).unwrap_or(&d[0]);
                        view! {
                            <div role="tabpanel" aria-label=format!("{} settings", s.profile)>
                                <ProcessingForm settings=*p id_prefix=format!("edit-{}", s.profile) server_error=server_field disabled=upgrade/>
                            </div>
                        }
                    })
                }}
                {move || error().map(|e| view! { <ErrorNote error=e/> })}
                <div class="actions">
                    <button type="button" class="secondary" on:click=move |_| cancel(false)>"Cancel"</button>
                    <button type="button" class="primary" on:click=confirm
                        disabled=move || invalid() || save.pending().get()>"Confirm"</button>
                </div>
            </div>
        </div>
    }
}

/// Adds and removes the group's transcoding profiles; nothing is saved before Confirm.
#[component]
fn ProfilesDialog(
    streams: Vec<StreamView>,
    on_close: impl Fn(bool) + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let live = streams.iter().any(StreamView::is_live);
    let id = streams[0].id.clone();
    let had: Vec<String> = streams.iter().map(|s| s.profile.clone()).collect();
    let chosen = RwSignal::new(had.clone());
    let save = ServerAction::<SaveProfiles>::new();
    let dropped = {
        let had = had.clone();
        move || {
            chosen.with(|c| {
                had.iter()
                    .filter(|p| !c.contains(p))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        }
    };
    let unchanged =
        move || chosen.with(|c| c.len() == had.len() && had.iter().all(|p| c.contains(p)));
    let confirm = move |_| {
        let profiles = chosen.with_untracked(|c| {
            PROFILES[1..]
                .iter()
                .filter(|p| c.iter().any(|x| x == *p))
                .map(|p| p.to_string())
                .collect()
        });
        save.dispatch(SaveProfiles {
            id: id.clone(),
            profiles,
        });
    };
    let close = on_close.clone();
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            close(true);
        }
    });
    let error = move || save.value().get().and_then(Result::err);
    let cancel = on_close.clone();
    view! {
        <div class="overlay">
            <div class="dialog card" role="dialog" aria-modal="true" aria-labelledby="profiles-title">
                <h2 id="profiles-title">"Transcoding profiles"</h2>
                <p class="note info">
                    {if live {
                        "This stream is live: the new ladder starts at its next ingest (stop and restart the stream)."
                    } else {
                        "The new ladder starts at the stream's next ingest."
                    }}
                    " New profiles start with the passthrough stream's live processing settings."
                </p>
                <div class="profile-choice">
                    <label class="chip">
                        <input type="checkbox" checked disabled/>"passthrough "<span class="muted">"source"</span>
                    </label>
                    {PROFILES[1..].iter().map(|p| {
                        let p: &'static str = p;
                        view! {
                            <label class="chip">
                                <input type="checkbox" name="profile" value=p
                                    prop:checked=move || chosen.with(|c| c.iter().any(|x| x == p))
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        chosen.update(|c| {
                                            c.retain(|x| x != p);
                                            if on {
                                                c.push(p.to_string());
                                            }
                                        });
                                    }/>
                                {p}" "<span class="muted">{profile_quality(p)}</span>
                            </label>
                        }
                    }).collect_view()}
                </div>
                {move || {
                    let gone = dropped();
                    (!gone.is_empty()).then(|| view! {
                        <p class="note warn" role="alert" data-testid="profiles-dropped">
                            {format!("Removing {} deletes {} stream with its thumbnails, motion clips, recordings and replay.",
                                gone.join(", "), if gone.len() == 1 { "its" } else { "their" })}
                        </p>
                    })
                }}
                {move || error().map(|e| view! { <ErrorNote error=e/> })}
                <div class="actions">
                    <button type="button" class="secondary" on:click=move |_| cancel(false)>"Cancel"</button>
                    <button type="button" class="primary" on:click=confirm
                        disabled=move || unchanged() || save.pending().get()>"Confirm"</button>
                </div>
            </div>
        </div>
    }
}

/// What a profile stream's rendition is doing: transcoded from the group's ingest while live.
fn rendition(stream: &StreamView) -> impl IntoView {
    let player = format!("/playout/{}", stream.id);
    let body = match &stream.transcode {
        Some(t) if t.state == "running" || t.state == "starting" => view! {
            <p class="note" role="status" data-testid="rendition" data-state=t.state.clone()>
                {format!(
                    "Rendition {} · target {} kbit/s · {} · CPU {:.1} % of a core ",
                    t.width.zip(t.height).map(|(w, h)| format!("{w}×{h}")).unwrap_or_else(|| "starting".into()),
                    t.target_kbps,
                    stream.live.as_ref().map(|l| format!("{:.0} kbit/s now", l.bitrate_kbps)).unwrap_or_default(),
                    t.cpu_percent,
                )}
                <a href=player>"Play this rendition"</a>
            </p>
        }
        .into_any(),
        Some(t) => view! {
            <p class="note warn" role="status" data-testid="rendition" data-state=t.state.clone()>
                {t.message.clone().unwrap_or_else(|| t.state.clone())}
            </p>
        }
        .into_any(),
        None => view! {
            <p class="muted" data-testid="rendition" data-state="idle">
                {format!("Transcoded from the group's ingest to {} while it is live.", profile_quality(&stream.profile))}
            </p>
        }
        .into_any(),
    };
    body
}

/// A process's name as the dashboard writes it.
fn process_label(process: &str) -> &'static str {
    match process {
        "thumbnail" => "Thumbnails",
        "motionclip" => "Motion clips",
        "recording" => "Recording",
        "replay" => "Replay",
        _ => "Process",
    }
}
