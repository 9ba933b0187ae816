//! `/watch/ID` and `/embed/ID`: a stream's public player, for viewers without an account. The
//! watch page has a title and the live state; the embed page is the video alone, filling its
//! iframe. Both follow the stream going live or idle, as `/playout/ID` does.
//! `/watch/replay/SESSION` and `/embed/replay/SESSION` play a session's replay the same way.
//! An organisation that signs its URLs hands out these links signed (`?expires=&sig=`); the
//! pages pass the query on and show the refusal without it.

use std::time::Duration;

use domain::view::{PublicReplay, PublicStream};
use leptos::prelude::*;
use leptos_meta::{Script, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{replay_to_watch, stream_to_watch};
use crate::components::{ticker, ErrorNote};

/// How often a public page asks whether the stream went live or idle.
const POLL: Duration = Duration::from_secs(3);

/// The signed link's `expires` and `sig`, when the page has them.
fn link_signature() -> impl Fn() -> (Option<i64>, Option<String>) + Copy + Send + Sync {
    let query = use_query_map();
    move || {
        let q = query.read();
        (q.get("expires").and_then(|e| e.parse().ok()), q.get("sig"))
    }
}

/// The stream of the page's `:id`, asked again every [`POLL`].
fn polled_stream() -> Resource<Result<PublicStream, domain::ApiError>> {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let signature = link_signature();
    let tick = ticker(POLL);
    Resource::new(
        move || (id(), signature(), tick.get()),
        |(id, (expires, sig), _)| stream_to_watch(id, expires, sig),
    )
}

/// The replay of the page's `:session`.
fn session_replay() -> Resource<Result<PublicReplay, domain::ApiError>> {
    let params = use_params_map();
    let session = move || params.read().get("session").unwrap_or_default();
    let signature = link_signature();
    Resource::new(
        move || (session(), signature()),
        |(session, (expires, sig))| replay_to_watch(session, expires, sig),
    )
}

/// A replay's video: seekable over the whole session (DVR while the session is still live).
fn replay_video(r: &PublicReplay) -> impl IntoView {
    view! {
        <video controls muted autoplay playsinline data-hls-src=r.hls.clone() data-replay="true"
            data-session-start=r.started_at.clone()></video>
    }
}

/// "2026-11-30 05:45:08" from an RFC 3339 time.
fn short_time(t: &str) -> String {
    t.replace('T', " ")
        .trim_end_matches('Z')
        .chars()
        .take(19)
        .collect()
}

/// The video of a live stream, or a notice while it is offline.
fn video(stream: &PublicStream) -> impl IntoView {
    let live = stream.state == "live";
    view! {
        <video controls muted autoplay playsinline
            data-hls-src=if live { stream.hls.clone() } else { String::new() }
            class:hidden=!live></video>
        {(!live).then(|| view! {
            <div class="placeholder" data-testid="idle">"The stream is offline. It plays here when it goes live."</div>
        })}
    }
}

/// A public page: the player's scripts, the brand header, the page.
#[component]
fn PublicFrame(children: Children) -> impl IntoView {
    view! {
        <Script src="/vendor/hls.min.js"/>
        <Script src="/player.js"/>
        <header class="top public">
            <a class="brand" href="/">"liveproc"</a>
        </header>
        <main class="page watch">{children()}</main>
    }
}

/// An embeddable page: the player's scripts and nothing around the video.
#[component]
fn EmbedFrame(children: Children) -> impl IntoView {
    view! {
        <Script src="/vendor/hls.min.js"/>
        <Script src="/player.js"/>
        <div class="embed">{children()}</div>
    }
}

#[component]
pub fn WatchPage() -> impl IntoView {
    let data = polled_stream();
    view! {
        <PublicFrame>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(s) => view! {
                            <Title text=s.title.clone()/>
                            <div class="page-head">
                                <h1 data-testid="watch-title">{s.title.clone()}</h1>
                                <span class=format!("badge {}", s.state) data-testid="state">{s.state.clone()}</span>
                            </div>
                            <section class="card player">{video(&s)}</section>
                        }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </PublicFrame>
    }
}

#[component]
pub fn EmbedPage() -> impl IntoView {
    let data = polled_stream();
    view! {
        <EmbedFrame>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(s) => view! { <Title text=s.title.clone()/>{video(&s)} }.into_any(),
                        Err(e) => view! { <p class="placeholder">{e.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </EmbedFrame>
    }
}

#[component]
pub fn WatchReplayPage() -> impl IntoView {
    let data = session_replay();
    view! {
        <PublicFrame>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(r) => {
                            let live = r.ended_at.is_none();
                            view! {
                                <Title text=format!("Replay · {}", r.title)/>
                                <div class="page-head">
                                    <h1 data-testid="watch-title">{r.title.clone()}</h1>
                                    <span class=if live { "badge live" } else { "badge idle" } data-testid="state">
                                        {if live { "live" } else { "replay" }}
                                    </span>
                                </div>
                                <p class="muted" data-testid="replay-span">
                                    {format!("Session of {} UTC", short_time(&r.started_at))}
                                    {r.ended_at.as_deref().map(|e| format!(" to {} UTC", short_time(e)))}
                                </p>
                                <section class="card player">{replay_video(&r)}</section>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </PublicFrame>
    }
}

#[component]
pub fn EmbedReplayPage() -> impl IntoView {
    let data = session_replay();
    view! {
        <EmbedFrame>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(r) => view! { <Title text=format!("Replay · {}", r.title)/>{replay_video(&r)} }.into_any(),
                        Err(e) => view! { <p class="placeholder">{e.message}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </EmbedFrame>
    }
}
