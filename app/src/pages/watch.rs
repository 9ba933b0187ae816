//! `/watch/ID` and `/embed/ID`: a stream's public player, for viewers without an account. The
//! watch page has a title and the live state; the embed page is the video alone, filling its
//! iframe. Both follow the stream going live or idle, as `/playout/ID` does.

use std::time::Duration;

use domain::view::PublicStream;
use leptos::prelude::*;
use leptos_meta::{Script, Title};
use leptos_router::hooks::use_params_map;

use crate::api::stream_to_watch;
use crate::components::ErrorNote;

/// How often a public page asks whether the stream went live or idle.
const POLL: Duration = Duration::from_secs(3);

/// The stream of the page's `:id`, asked again every [`POLL`].
fn polled_stream() -> Resource<Result<PublicStream, domain::ApiError>> {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let tick = RwSignal::new(0u32);
    Effect::new(move |_| {
        let handle = set_interval_with_handle(move || tick.update(|t| *t += 1), POLL).ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    });
    Resource::new(move || (id(), tick.get()), |(id, _)| stream_to_watch(id))
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

#[component]
pub fn WatchPage() -> impl IntoView {
    let data = polled_stream();
    view! {
        <Script src="/vendor/hls.min.js"/>
        <Script src="/player.js"/>
        <header class="top public">
            <a class="brand" href="/">"liveproc"</a>
        </header>
        <main class="page watch">
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
        </main>
    }
}

#[component]
pub fn EmbedPage() -> impl IntoView {
    let data = polled_stream();
    view! {
        <Script src="/vendor/hls.min.js"/>
        <Script src="/player.js"/>
        <div class="embed">
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(s) => view! { <Title text=s.title.clone()/>{video(&s)} }.into_any(),
                        Err(e) => view! { <p class="placeholder">{e.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}
