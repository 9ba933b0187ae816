//! One file per route.

pub mod clip;
pub mod login;
pub mod new_stream;
pub mod organisation;
pub mod playout;
pub mod replay;
pub mod stream;
pub mod streams;
pub mod watch;
pub mod webhooks;

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
            r.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <main class="page narrow">
            <h1>"Not found"</h1>
            <p>"There is no page here. "<a href="/">"Back to the streams"</a></p>
        </main>
    }
}
