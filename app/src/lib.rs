//! The dashboard: shell, router and pages. Compiled with `ssr` into the server and with `hydrate`
//! into the wasm bundle; pages render on the server and become interactive once wasm loads.

#![recursion_limit = "256"]

pub mod api;
pub mod auth;
pub mod components;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this marks the page as hydrated (tests wait for it).
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/liveproc.css"/>
        <Title formatter=|t: String| if t.is_empty() { "liveproc".to_string() } else { format!("{t} · liveproc") }/>
        <Router>
            <Routes fallback=|| view! { <pages::NotFound/> }>
                <Route path=path!("/login") view=pages::login::LoginPage/>
                <Route path=path!("/") view=pages::streams::StreamsPage/>
                <Route path=path!("/streams/new") view=pages::new_stream::NewStreamPage/>
                <Route path=path!("/stream/:id") view=pages::stream::StreamPage/>
                <Route path=path!("/organisation") view=pages::organisation::OrganisationPage/>
                <Route path=path!("/webhooks") view=pages::webhooks::WebhooksPage/>
                <Route path=path!("/playout/:id") view=pages::playout::PlayoutPage/>
                <Route path=path!("/replay/:session") view=pages::replay::ReplayPage/>
                <Route path=path!("/clip/:id") view=pages::clip::ClipPage ssr=SsrMode::Async/>
                <Route path=path!("/watch/:id") view=pages::watch::WatchPage/>
                <Route path=path!("/embed/:id") view=pages::watch::EmbedPage/>
                <Route path=path!("/watch/replay/:session") view=pages::watch::WatchReplayPage/>
                <Route path=path!("/embed/replay/:session") view=pages::watch::EmbedReplayPage/>
            </Routes>
        </Router>
    }
}
