//! `/`: the organisation's streams, one row per stream group.

use domain::view::{StreamView, ThumbnailEntry};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{list_groups, whoami};
use crate::components::layout::Layout;
use crate::components::live_events::follow_events;
use crate::components::ErrorNote;

#[component]
pub fn StreamsPage() -> impl IntoView {
    let groups = Resource::new(|| (), |_| list_groups());
    let who = Resource::new(|| (), |_| whoami());
    // Live: streams going live or idle, new or deleted ones, new previews.
    follow_events(
        |e| {
            matches!(
                e.kind.as_str(),
                "stream.created"
                    | "stream.updated"
                    | "stream.deleted"
                    | "stream.live"
                    | "stream.idle"
                    | "thumbnail.created"
            )
        },
        move || groups.refetch(),
    );
    view! {
        <Title text="Streams"/>
        <Layout>
            <div class="page-head">
                <h1>"Streams"</h1>
                <div class="head-actions">
                    <button type="button" class="icon" aria-label="Refresh" title="Refresh"
                        on:click=move |_| groups.refetch()>"↻"</button>
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            who.await.ok().filter(|m| m.can_edit()).map(|_| view! {
                                <a class="button primary" href="/streams/new">"New stream"</a>
                            })
                        })}
                    </Suspense>
                </div>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let can_edit = who.await.is_ok_and(|m| m.can_edit());
                    match groups.await {
                        Ok(groups) if groups.is_empty() => view! {
                            <p class="card empty">"No streams yet."
                                {can_edit.then(|| view! { " "<a href="/streams/new">"Create the first one"</a>"." })}</p>
                        }.into_any(),
                        Ok(groups) => view! { <StreamTable groups/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </Layout>
    }
}

#[component]
fn StreamTable(groups: Vec<Vec<StreamView>>) -> impl IntoView {
    view! {
        <div class="table-wrap card">
            <table class="streams">
                <thead><tr>
                    <th>"Preview"</th><th>"Name"</th><th>"State"</th><th>"Profiles"</th>
                    <th>"Live processing"</th><th>"Created (UTC)"</th>
                </tr></thead>
                <tbody>
                    {groups.into_iter().map(|g| {
                        let head = g[0].clone();
                        let live = g.iter().any(StreamView::is_live);
                        let profiles = g.iter().map(|s| s.profile.clone()).collect::<Vec<_>>().join(", ");
                        let mut on: Vec<&str> = Vec::new();
                        for s in &g {
                            for n in s.processing.settings.enabled_names() {
                                if !on.contains(&n) { on.push(n); }
                            }
                        }
                        let processes = if on.is_empty() { "—".to_string() } else { on.join(", ") };
                        let thumb = (live && head.asset_counts.thumbnail > 0).then(|| {
                            head.playout.thumbnails.iter().find_map(|t| match t {
                                // The small preview of the latest thumbnail.
                                ThumbnailEntry::Link(l) => Some(l.url.replace("latest.jpg", "latest.320.jpg")),
                                _ => None,
                            })
                        }).flatten();
                        let label = if head.name.is_empty() { head.streamname.clone() } else { head.name.clone() };
                        view! {
                            <tr data-stream=head.id.clone()>
                                <td class="thumb">{match thumb {
                                    Some(u) => view! { <img src=u alt="" loading="lazy"/> }.into_any(),
                                    None => view! { <span class="placeholder small"></span> }.into_any(),
                                }}</td>
                                <td><a href=format!("/stream/{}", head.id)>{label}</a>
                                    <div class="muted mono">{head.streamname.clone()}</div></td>
                                <td><span class=if live { "badge live" } else { "badge idle" }>{if live { "live" } else { "idle" }}</span></td>
                                <td>{profiles}</td>
                                <td>{processes}</td>
                                <td class="mono">{head.created_at.replace('T', " ").trim_end_matches('Z').chars().take(19).collect::<String>()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
