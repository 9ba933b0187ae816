//! `/clip/ID`: a clip's public share page. No sign-in; rendered whole on the server (async SSR)
//! so link previews find the Open Graph tags and the poster in the first response.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

use crate::api::clip_to_share;
use crate::components::{CopyButton, ErrorNote};

#[component]
pub fn ClipPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, clip_to_share);
    view! {
        <header class="top public">
            <a class="brand" href="/">"liveproc"</a>
        </header>
        <main class="page share">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(shared) => {
                            let c = shared.clip.clone();
                            let title = c.title.clone().unwrap_or_else(|| format!("Clip from {}", shared.stream_name));
                            let description = format!("{:.1} s from {} at {} UTC", c.duration, shared.stream_name, shared.recorded_at.replace('T', " ").chars().take(19).collect::<String>());
                            view! {
                                <Title text=title.clone()/>
                                <Meta name="description" content=description.clone()/>
                                <Meta property="og:type" content="video.other"/>
                                <Meta property="og:title" content=title.clone()/>
                                <Meta property="og:description" content=description.clone()/>
                                <Meta property="og:url" content=c.share_url.clone()/>
                                <Meta property="og:video" content=c.url.clone()/>
                                <Meta property="og:video:type" content="video/mp4"/>
                                {c.poster.clone().map(|p| view! {
                                    <Meta property="og:image" content=p/>
                                    <Meta name="twitter:card" content="summary_large_image"/>
                                })}
                                <article class="card shared-clip">
                                    <h1 data-testid="clip-title">{title.clone()}</h1>
                                    <video controls playsinline preload="metadata" data-testid="clip-video"
                                        src=c.url.clone() poster=c.poster.clone().unwrap_or_default()></video>
                                    <dl class="kv">
                                        <dt>"Stream"</dt><dd>{shared.stream_name.clone()}</dd>
                                        <dt>"Recorded (UTC)"</dt><dd>{shared.recorded_at.replace('T', " ").chars().take(19).collect::<String>()}</dd>
                                        <dt>"Duration"</dt><dd>{format!("{:.1} s", c.duration)}</dd>
                                    </dl>
                                    <p class="actions">
                                        <CopyButton text=c.share_url.clone() label="Copy link"/>
                                        <a class="button secondary" href=c.url.clone() download="">"Download MP4"</a>
                                    </p>
                                </article>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}
