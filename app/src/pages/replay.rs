//! `/replay/SESSION`: rewatch a session from its replay playlist. A live session plays with DVR:
//! seek back within the replay window, or jump to live.

use leptos::prelude::*;
use leptos_meta::{Script, Title};
use leptos_router::hooks::use_params_map;

use crate::api::{replay_session, whoami};
use crate::components::clip_editor::ClipEditor;
use crate::components::layout::Layout;
use crate::components::ErrorNote;

#[component]
pub fn ReplayPage() -> impl IntoView {
    let params = use_params_map();
    let session = move || params.read().get("session").unwrap_or_default();
    let data = Resource::new(session, replay_session);
    let who = Resource::new(|| (), |_| whoami());
    view! {
        <Script src="/vendor/hls.min.js"/>
        <Script src="/player.js"/>
        <Layout>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let can_edit = who.await.map(|m| m.can_edit()).unwrap_or(false);
                    match data.await {
                        Ok((stream, replay)) => {
                            let title = if stream.name.is_empty() { stream.streamname.clone() } else { stream.name.clone() };
                            let live = replay.ended_at.is_none();
                            let video = NodeRef::<leptos::html::Video>::new();
                            view! {
                                <Title text=format!("Rewatch · {title}")/>
                                <div class="page-head">
                                    <h1>"Rewatch: "{title}</h1>
                                    <span class=if live { "badge live" } else { "badge idle" } data-testid="replay-state">
                                        {if live { "live" } else { "ended" }}
                                    </span>
                                    <a class="button secondary" href=format!("/stream/{}", stream.id)>"Stream overview"</a>
                                </div>
                                <section class="card player">
                                    <video node_ref=video controls muted autoplay playsinline data-hls-src=replay.hls.clone() data-replay="true"
                                        data-session-start=replay.started_at.clone()></video>
                                    {live.then(|| view! {
                                        <div class="actions">
                                            <button type="button" class="secondary" data-player-action="live">"Jump to live"</button>
                                        </div>
                                    })}
                                    <dl class="kv">
                                        <dt>"Session"</dt><dd><code>{replay.session_id.clone()}</code></dd>
                                        <dt>"Started (UTC)"</dt><dd>{replay.started_at.clone()}</dd>
                                        <dt>"Ended (UTC)"</dt><dd>{replay.ended_at.clone().unwrap_or_else(|| "still live".into())}</dd>
                                        <dt>"HLS"</dt><dd><a href=replay.hls.clone()>{replay.hls.clone()}</a></dd>
                                    </dl>
                                </section>
                                // Read-only keys watch; they cut no clips.
                                {can_edit.then(|| view! { <ClipEditor session=replay.session_id.clone() video/> })}
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </Layout>
    }
}
