//! Clip & Share on the rewatch page: in and out points on a timeline (drag handles, "set at
//! current time", numeric fields), preview, create, and the session's clips with share links.
//!
//! Times are session seconds. `public/player.js` writes `data-session-offset` on the video (from
//! hls.js's program dates), so session time = `currentTime + offset`.

use domain::view::{ClipRequest, ClipView};
use leptos::html::Video;
use leptos::prelude::*;

use crate::api::{create_clip, delete_clip, session_clips, session_thumbnails};
use crate::components::{CopyButton, ErrorNote};

/// Seconds a new selection spans by default.
#[cfg(feature = "hydrate")]
const DEFAULT_SPAN: f64 = 10.0;
const MIN_SPAN: f64 = 0.1;

fn secs(v: f64) -> String {
    format!("{:.1}", v)
}

/// `m:ss.s`, for people.
fn clock(v: f64) -> String {
    let v = v.max(0.0);
    format!("{}:{:04.1}", (v / 60.0).floor() as u64, v % 60.0)
}

#[component]
pub fn ClipEditor(session: String, video: NodeRef<Video>) -> impl IntoView {
    // What the player can seek now, in session seconds.
    let range = RwSignal::new(None::<(f64, f64)>);
    let current = RwSignal::new(0.0f64);
    let in_s = RwSignal::new(0.0f64);
    let out_s = RwSignal::new(0.0f64);
    let chosen = RwSignal::new(false);
    let title = RwSignal::new(String::new());
    // While previewing: pause when the playhead reaches this.
    let stop_at = RwSignal::new(None::<f64>);

    #[cfg(feature = "hydrate")]
    {
        let poll = move || {
            let Some(v) = video.get_untracked() else {
                return;
            };
            let offset = v
                .get_attribute("data-session-offset")
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
            let seekable = v.seekable();
            let n = seekable.length();
            if n > 0 {
                let from = (seekable.start(0).unwrap_or(0.0) + offset).max(0.0);
                let to = seekable.end(n - 1).unwrap_or(0.0) + offset;
                if to > from {
                    range.set(Some((from, to)));
                    if !chosen.get_untracked() {
                        in_s.set(from);
                        out_s.set(to.min(from + DEFAULT_SPAN));
                        chosen.set(true);
                    }
                }
            }
            let t = v.current_time() + offset;
            current.set(t);
            if let Some(stop) = stop_at.get_untracked() {
                if t >= stop {
                    let _ = v.pause();
                    stop_at.set(None);
                }
            }
        };
        Effect::new(move |_| {
            if let Ok(h) = set_interval_with_handle(poll, std::time::Duration::from_millis(200)) {
                on_cleanup(move || h.clear());
            }
        });
    }

    // Moves the player to session time `t`.
    let seek = move |t: f64| {
        #[cfg(feature = "hydrate")]
        if let Some(v) = video.get_untracked() {
            let offset = v
                .get_attribute("data-session-offset")
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
            v.set_current_time((t - offset).max(0.0));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (t, video);
    };
    let preview = move |_| {
        let (a, b) = (in_s.get_untracked(), out_s.get_untracked());
        seek(a);
        stop_at.set(Some(b));
        #[cfg(feature = "hydrate")]
        if let Some(v) = video.get_untracked() {
            let _ = v.play();
        }
    };

    let problem = move || {
        let (a, b) = (in_s.get(), out_s.get());
        if b - a < MIN_SPAN {
            return Some("The out point must come after the in point.".to_string());
        }
        if let Some((from, to)) = range.get() {
            if a < from - 0.05 || b > to + 0.05 {
                return Some(format!(
                    "Choose points within {}–{} s: that is what the replay holds now.",
                    secs(from),
                    secs(to)
                ));
            }
        }
        None
    };

    // Thumbnails of the session, shown over the timeline where the pointer is.
    let session_for_thumbs = session.clone();
    let thumbs = Resource::new(
        move || (),
        move |_| session_thumbnails(session_for_thumbs.clone()),
    );
    let hover = RwSignal::new(None::<f64>);
    let on_hover = move |ev: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let rect = ev
                .current_target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .map(|e| e.get_bounding_client_rect());
            if let (Some((from, to)), Some(rect)) = (range.get_untracked(), rect) {
                if rect.width() <= 0.0 {
                    return;
                }
                let x = (f64::from(ev.client_x()) - rect.left()) / rect.width();
                hover.set(Some(from + x.clamp(0.0, 1.0) * (to - from)));
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let hover_thumb = move || {
        let t = hover.get()?;
        let list = thumbs.get()?.ok()?;
        let (at, url) = list
            .iter()
            .rev()
            .find(|(at, _)| *at <= t + 0.5)
            .or(list.first())?;
        Some((t, *at, url.clone()))
    };
    let session_for_list = session.clone();
    let clips = Resource::new(move || (), move |_| session_clips(session_for_list.clone()));
    let session_for_create = session.clone();
    let create = Action::new(move |req: &ClipRequest| {
        let (s, req) = (session_for_create.clone(), req.clone());
        async move { create_clip(s, req).await }
    });
    let remove = Action::new(move |id: &String| delete_clip(id.clone()));
    Effect::new(move |_| {
        if create.value().get().is_some_and(|r| r.is_ok()) || remove.value().get().is_some() {
            clips.refetch();
        }
    });
    let on_create = move |_| {
        if problem().is_some() {
            return;
        }
        let t = title.get_untracked();
        create.dispatch(ClipRequest {
            start: (in_s.get_untracked() * 1000.0).round() / 1000.0,
            end: (out_s.get_untracked() * 1000.0).round() / 1000.0,
            title: (!t.trim().is_empty()).then_some(t),
        });
    };

    // Percentages along the timeline, for the selection band and the playhead.
    let pct = move |t: f64| match range.get() {
        Some((from, to)) if to > from => ((t - from) / (to - from) * 100.0).clamp(0.0, 100.0),
        _ => 0.0,
    };
    let bounds = move || range.get().unwrap_or((0.0, 0.0));
    let set_from_field = move |target: RwSignal<f64>| {
        move |ev: leptos::ev::Event| {
            if let Ok(v) = event_target_value(&ev).trim().parse::<f64>() {
                if v.is_finite() {
                    target.set(v.max(0.0));
                    chosen.set(true);
                    seek(v);
                }
            }
        }
    };

    view! {
        <section class="card clip-editor" id="clip" data-testid="clip-editor">
            <h2>"Clip & Share"</h2>
            <p class="muted">"Choose in and out points, preview, then create a clip to share. Times are seconds from the session's start."</p>
            // step="any": a range input snaps to min + k·step, and the window starts at an
            // arbitrary time, so a step would move the handles off the chosen points.
            <div class="timeline" data-testid="clip-timeline"
                on:mousemove=on_hover on:mouseleave=move |_| hover.set(None)>
                {move || hover_thumb().map(|(t, at, url)| view! {
                    <figure class="hover-thumb" data-testid="timeline-thumb" style=format!("left:{:.3}%", pct(t))>
                        <img src=url alt=""/>
                        <figcaption>{clock(at)}</figcaption>
                    </figure>
                })}
                <div class="band" style=move || format!("left:{:.3}%;width:{:.3}%", pct(in_s.get()), (pct(out_s.get()) - pct(in_s.get())).max(0.0))></div>
                <div class="playhead" style=move || format!("left:{:.3}%", pct(current.get()))></div>
                <input type="range" aria-label="In point" data-testid="clip-in-handle" step="any"
                    prop:min=move || bounds().0 prop:max=move || bounds().1 prop:value=move || in_s.get()
                    on:input=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                            let v = v.min(out_s.get_untracked() - MIN_SPAN);
                            in_s.set(v);
                            chosen.set(true);
                            seek(v);
                        }
                    }/>
                <input type="range" aria-label="Out point" data-testid="clip-out-handle" step="any"
                    prop:min=move || bounds().0 prop:max=move || bounds().1 prop:value=move || out_s.get()
                    on:input=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                            let v = v.max(in_s.get_untracked() + MIN_SPAN);
                            out_s.set(v);
                            chosen.set(true);
                            seek(v);
                        }
                    }/>
            </div>
            <p class="timeline-legend muted">
                <span>{move || clock(bounds().0)}</span>
                <span data-testid="clip-playhead">"Playhead "{move || clock(current.get())}</span>
                <span>{move || clock(bounds().1)}</span>
            </p>
            <div class="clip-fields">
                <label>"In (s)"
                    <input type="number" step="0.1" min="0" data-testid="clip-in"
                        prop:value=move || secs(in_s.get()) on:change=set_from_field(in_s)/>
                </label>
                <button type="button" class="secondary" data-testid="set-in" on:click=move |_| { in_s.set(current.get_untracked()); chosen.set(true); }>"Set in at current time"</button>
                <label>"Out (s)"
                    <input type="number" step="0.1" min="0" data-testid="clip-out"
                        prop:value=move || secs(out_s.get()) on:change=set_from_field(out_s)/>
                </label>
                <button type="button" class="secondary" data-testid="set-out" on:click=move |_| { out_s.set(current.get_untracked()); chosen.set(true); }>"Set out at current time"</button>
                <span class="muted" data-testid="clip-length">{move || format!("Length {} s", secs((out_s.get() - in_s.get()).max(0.0)))}</span>
            </div>
            <label class="clip-title">"Title"
                <input type="text" maxlength="200" placeholder="Optional" data-testid="clip-title"
                    prop:value=move || title.get() on:input=move |ev| title.set(event_target_value(&ev))/>
            </label>
            {move || problem().map(|p| view! { <p class="field-error" role="alert">{p}</p> })}
            <div class="actions">
                <button type="button" class="secondary" on:click=preview data-testid="clip-preview">"Preview"</button>
                <button type="button" on:click=on_create data-testid="clip-create"
                    disabled=move || create.pending().get() || problem().is_some()>
                    {move || if create.pending().get() { "Creating…" } else { "Create clip" }}
                </button>
            </div>
            {move || create.value().get().map(|r| match r {
                Ok(c) => view! {
                    <div class="note ok" data-testid="clip-created">
                        <p>"Clip created ("{secs(c.duration)}" s). Share link: "
                            <a href=c.share_url.clone() data-testid="clip-share-url">{c.share_url.clone()}</a>
                            " "<CopyButton text=c.share_url.clone() label="Copy share link"/></p>
                    </div>
                }.into_any(),
                Err(e) => view! { <ErrorNote error=e/> }.into_any(),
            })}
            <h3>"Clips of this session"</h3>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match clips.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No clips yet."</p> }.into_any(),
                        Ok(list) => view! { <ClipTable clips=list remove/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ClipTable(
    clips: Vec<ClipView>,
    remove: Action<String, Result<(), domain::ApiError>>,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="details clips" data-testid="clip-list">
                <thead><tr><th>"Title"</th><th>"In – out (s)"</th><th>"Duration"</th><th>"Created (UTC)"</th><th>"Share"</th><th></th></tr></thead>
                <tbody>
                    {clips.into_iter().map(|c| {
                        let id = c.id.clone();
                        view! {
                            <tr data-clip=c.id.clone()>
                                <td>{c.title.clone().unwrap_or_else(|| "Untitled".into())}</td>
                                <td>{format!("{} – {}", secs(c.start), secs(c.end))}</td>
                                <td>{format!("{} s", secs(c.duration))}</td>
                                <td>{c.created_at.replace('T', " ").chars().take(19).collect::<String>()}</td>
                                <td><a href=c.share_url.clone()>"Open"</a>" "<CopyButton text=c.share_url.clone() label="Copy share link"/></td>
                                <td><button type="button" class="link danger" on:click=move |_| { remove.dispatch(id.clone()); }>"Delete"</button></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
