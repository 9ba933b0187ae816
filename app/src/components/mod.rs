//! Pieces shared by pages.

pub mod clip_editor;
pub mod layout;
pub mod live_events;
pub mod load_more;
pub mod processing_form;

use domain::ApiError;
use leptos::prelude::*;

/// A counter that goes up every `period` while the calling page is shown: read it in a
/// resource's source to ask the server again (public players, delivery logs).
pub fn ticker(period: std::time::Duration) -> RwSignal<u32> {
    let tick = RwSignal::new(0u32);
    Effect::new(move |_| {
        let handle = set_interval_with_handle(move || tick.update(|t| *t += 1), period).ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    });
    tick
}

/// An error box; a signed-out error links to the sign-in page.
#[component]
pub fn ErrorNote(error: ApiError) -> impl IntoView {
    let signed_out = error.status == 401;
    view! {
        <div class="note error" role="alert">
            <p>{error.message.clone()}</p>
            {signed_out.then(|| view! { <p><a href="/login">"Sign in"</a></p> })}
        </div>
    }
}

/// A button that copies `text` to the clipboard and says so.
#[component]
pub fn CopyButton(text: String, #[prop(into)] label: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let on_click = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let _ = window().navigator().clipboard().write_text(&text);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &text;
        copied.set(true);
    };
    view! {
        <button type="button" class="copy" aria-label=label on:click=on_click>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}

/// A tab row over `labels` (no row for a single label, as the product shows no tabs for a
/// stream without a group); `active` holds the selected label.
#[component]
pub fn Tabs(#[prop(into)] labels: Signal<Vec<String>>, active: RwSignal<String>) -> impl IntoView {
    move || {
        let labels = labels.get();
        (labels.len() > 1).then(|| {
            view! {
                <div class="tabs" role="tablist">
                    {labels.into_iter().map(|label| {
                        let key = label.clone();
                        let selected = label.clone();
                        view! {
                            <button type="button" role="tab" class="tab"
                                aria-selected=move || (active.get() == selected).to_string()
                                on:click=move |_| active.set(key.clone())>
                                {label}
                            </button>
                        }
                    }).collect_view()}
                </div>
            }
        })
    }
}
