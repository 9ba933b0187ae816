//! `/playout/ID`: the live player. Plays the stream's low-latency HLS with hls.js (served from
//! `/vendor`, glued by `/player.js`) and follows the stream going live or idle.

use std::time::Duration;

use domain::view::StreamView;
use leptos::prelude::*;
use leptos_meta::{Script, Title};
use leptos_router::hooks::use_params_map;

use crate::api::stream_group;
use crate::components::layout::Layout;
use crate::components::ErrorNote;
use crate::pages::stream::StreamProcessing;

/// How often the page asks whether the stream went live or idle.
const POLL: Duration = Duration::from_secs(2);

#[component]
pub fn PlayoutPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let tick = RwSignal::new(0u32);
    let group = Resource::new(move || (id(), tick.get()), |(id, _)| stream_group(id));
    Effect::new(move |_| {
        let handle = set_interval_with_handle(move || tick.update(|t| *t += 1), POLL).ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    });
    view! {
        <Script src="/vendor/hls.min.js"/>
        <Script src="/player.js"/>
        <Layout>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let current = id();
                    match group.await {
                        Ok(streams) => {
                            let s = streams.into_iter().find(|s| s.id == current);
                            s.map(|s| view! {
                                <Player stream=s.clone()/>
                                // The documents' Playout Overview: the same live processing view
                                // as the stream overview, read only, with the VOD list.
                                <section class="card live-processing" aria-labelledby="lp-title">
                                    <h2 id="lp-title">"Live Processing"</h2>
                                    <StreamProcessing stream=s/>
                                </section>
                            }.into_any())
                                .unwrap_or_else(|| view! { <p>"No such stream."</p> }.into_any())
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </Layout>
    }
}

#[component]
fn Player(stream: StreamView) -> impl IntoView {
    let live = stream.is_live();
    // A group with renditions plays its ABR playlist (source + renditions, with a quality
    // menu); any other stream its own playlist.
    let links = &stream.playout.hls;
    let hls = links
        .iter()
        .find(|l| l.kind == "abr")
        .or(links.first())
        .map(|l| l.url.clone())
        .unwrap_or_default();
    let title = if stream.name.is_empty() {
        stream.streamname.clone()
    } else {
        stream.name.clone()
    };
    let session = stream.sessions.first().cloned();
    view! {
        <Title text=format!("Playout · {title}")/>
        <div class="page-head">
            <h1>{title}</h1>
            <span class=format!("badge {}", stream.state) data-testid="state">{stream.state.clone()}</span>
            <a class="button secondary" href=format!("/stream/{}", stream.id)>"Stream overview"</a>
        </div>
        <section class="card player">
            // The same <video> stays while the state flips, so playback is not restarted by polling.
            <video controls muted autoplay playsinline
                data-hls-src=if live { hls.clone() } else { String::new() }
                class:hidden=!live></video>
            <div class="quality-menu" data-quality-menu hidden></div>
            {(!live).then(|| view! {
                <div class="placeholder">"The stream is idle. Playback starts when ingest begins."</div>
            })}
            <dl class="kv">
                <dt>"HLS"</dt><dd><code>{hls}</code></dd>
                <dt>"Profile"</dt><dd>{stream.profile.clone()}</dd>
                {session.map(|s| view! {
                    <dt>"Session"</dt>
                    <dd>{s.started_at.clone()}" · "{s.video_codec.unwrap_or_default()}" "
                        {s.width.map(|w| format!("{w}×{}", s.height.unwrap_or_default())).unwrap_or_default()}
                        {s.audio_codec.map(|a| format!(" · {a}")).unwrap_or_default()}</dd>
                })}
            </dl>
        </section>
    }
}
