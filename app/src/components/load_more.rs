//! "Load more" under a list of the stream page: the list starts with the few entries the stream
//! object carried; the first click asks for the newest page (replacing them, so entries made
//! meanwhile show at the top), later clicks follow the API's cursor to the end.

use std::future::Future;

use domain::ApiError;
use leptos::prelude::*;

use crate::api::More;

/// One list's entries and where its next page starts.
pub struct Pager<T: Send + Sync + 'static> {
    pub items: RwSignal<Vec<T>>,
    next: RwSignal<Option<String>>,
    /// A page was loaded: `next` is the truth from now on.
    started: RwSignal<bool>,
    busy: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    /// How many there are (the stream object's count).
    total: i64,
}

impl<T: Send + Sync + 'static> Clone for Pager<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for Pager<T> {}

impl<T: Send + Sync + 'static> Pager<T> {
    pub fn new(first: Vec<T>, total: i64) -> Self {
        Pager {
            items: RwSignal::new(first),
            next: RwSignal::new(None),
            started: RwSignal::new(false),
            busy: RwSignal::new(false),
            error: RwSignal::new(None),
            total,
        }
    }

    fn has_more(&self) -> bool {
        if self.started.get() {
            self.next.with(Option::is_some)
        } else {
            (self.items.with(Vec::len) as i64) < self.total
        }
    }

    /// Loads the next page with `fetch` (given the cursor).
    fn load<F, Fut>(self, fetch: F)
    where
        F: FnOnce(Option<String>) -> Fut + 'static,
        Fut: Future<Output = Result<More<T>, ApiError>> + 'static,
    {
        if self.busy.get_untracked() {
            return;
        }
        self.busy.set(true);
        let started = self.started.get_untracked();
        let cursor = if started {
            self.next.get_untracked()
        } else {
            None
        };
        leptos::task::spawn_local(async move {
            match fetch(cursor).await {
                Ok(page) => {
                    if started {
                        self.items.update(|v| v.extend(page.items));
                    } else {
                        self.items.set(page.items);
                        self.started.set(true);
                    }
                    self.next.set(page.next);
                    self.error.set(None);
                }
                Err(e) => self.error.set(Some(e.message)),
            }
            self.busy.set(false);
        });
    }
}

/// The "Showing N of M" line and its Load more button; `fetch` gets one page after a cursor.
pub fn load_more<T, F, Fut>(pager: Pager<T>, list: &'static str, fetch: F) -> impl IntoView
where
    T: Send + Sync + 'static,
    F: Fn(Option<String>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<More<T>, ApiError>> + 'static,
{
    let shown = move || pager.items.with(Vec::len);
    view! {
        <p class="load-more" data-list=list>
            <span class="muted" data-testid=format!("{list}-shown")>
                {move || format!("Showing {} of {}", shown(), (shown() as i64).max(pager.total))}
            </span>
            {move || pager.has_more().then(|| {
                let fetch = fetch.clone();
                view! {
                    " "
                    <button type="button" class="secondary" data-testid=format!("{list}-more")
                        disabled=move || pager.busy.get()
                        on:click=move |_| pager.load(fetch.clone())>
                        {move || if pager.busy.get() { "Loading…" } else { "Load more" }}
                    </button>
                }
            })}
            {move || pager.error.get().map(|e| view! { <span class="error" role="alert">" "{e}</span> })}
        </p>
    }
}
