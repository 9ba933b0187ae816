//! The dashboard's live updates: the organisation's server-sent events
//! (`/api/v1/events/stream`, signed in by the session cookie) make a page refetch its data
//! when something happens to what it shows, with no Refresh and no reload.

use std::sync::Arc;

use domain::view::EventView;
use leptos::prelude::*;

type Wanted = Arc<dyn Fn(&EventView) -> bool + Send + Sync>;
type Refresh = Arc<dyn Fn() + Send + Sync>;

/// Calls `refresh` for each event `wanted` accepts, while the calling page is shown. Runs in
/// the browser only (an effect); the server renders the page as it is.
pub fn follow_events(
    wanted: impl Fn(&EventView) -> bool + Send + Sync + 'static,
    refresh: impl Fn() + Send + Sync + 'static,
) {
    let (wanted, refresh): (Wanted, Refresh) = (Arc::new(wanted), Arc::new(refresh));
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        subscribe(wanted.clone(), refresh.clone());
        #[cfg(not(feature = "hydrate"))]
        let _ = (&wanted, &refresh);
    });
}

#[cfg(feature = "hydrate")]
fn subscribe(wanted: Wanted, refresh: Refresh) {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let Ok(source) = web_sys::EventSource::new("/api/v1/events/stream") else {
        return;
    };
    let handler = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        let Some(text) = e.data().as_string() else {
            return;
        };
        if serde_json::from_str::<EventView>(&text).is_ok_and(|event| wanted(&event)) {
            refresh();
        }
    });
    // Every type but the test event, which names no stream.
    for kind in domain::view::EVENT_TYPES
        .iter()
        .filter(|k| **k != "webhook.test")
    {
        let _ = source.add_event_listener_with_callback(kind, handler.as_ref().unchecked_ref());
    }
    // The browser reconnects by itself (sending Last-Event-ID); leaving the page closes it.
    let kept = StoredValue::new_local((source, handler));
    on_cleanup(move || kept.with_value(|(source, _)| source.close()));
}
