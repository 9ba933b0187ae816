//! `/organisation`: the organisation and its enabled packages.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{whoami, SetAssetAccess, SetRecordingRetention};
use crate::components::layout::Layout;
use crate::components::ErrorNote;

#[component]
pub fn OrganisationPage() -> impl IntoView {
    let save = ServerAction::<SetRecordingRetention>::new();
    let access = ServerAction::<SetAssetAccess>::new();
    let who = Resource::new(
        move || (save.version().get(), access.version().get()),
        |_| whoami(),
    );
    view! {
        <Title text="Organisation"/>
        <Layout>
            <h1>"Organisation"</h1>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match who.await {
                        Ok(m) => {
                            let enabled = m.organisation.live_processing_enabled();
                            view! {
                                <section class="card">
                                    <dl class="kv">
                                        <dt>"Name"</dt><dd>{m.organisation.name.clone()}</dd>
                                        <dt>"ID"</dt><dd><code>{m.organisation.id.clone()}</code></dd>
                                        <dt>"Your role"</dt><dd>{m.role.clone()}{m.operator.then_some(" (operator)")}</dd>
                                    </dl>
                                </section>
                                <section class="card" aria-labelledby="packages-title">
                                    <h2 id="packages-title">"Enabled Packages"</h2>
                                    <table class="details">
                                        <thead><tr><th>"Package"</th><th>"Status"</th></tr></thead>
                                        <tbody>
                                            <tr data-package="liveProcessing">
                                                <th scope="row">"Live Processing"</th>
                                                <td><span class=if enabled { "state on" } else { "state off" }>
                                                    {if enabled { "Enabled" } else { "Upgrade needed" }}
                                                </span></td>
                                            </tr>
                                        </tbody>
                                    </table>
                                    {(!enabled).then(|| view! {
                                        <p class="muted">"Ask the operator of this server to enable live processing for your organisation."</p>
                                    })}
                                </section>
                                <section class="card" aria-labelledby="retention-title">
                                    <h2 id="retention-title">"Retention"</h2>
                                    <p data-testid="retention">
                                        {match m.organisation.retention.recording_days {
                                            Some(d) => format!("Recordings are deleted {d} days after they were made."),
                                            None => "Recordings are kept until you delete them.".to_string(),
                                        }}
                                    </p>
                                    {(m.role == "admin").then(|| view! {
                                        <ActionForm action=save>
                                            <div class="clip-fields">
                                                <label>"Keep recordings (days)"
                                                    <input type="number" name="days" min="1" max="36500" placeholder="for ever"
                                                        value=m.organisation.retention.recording_days.map(|d| d.to_string()).unwrap_or_default()/>
                                                </label>
                                                <button type="submit">"Save"</button>
                                            </div>
                                            <p class="muted">"Leave empty to keep recordings. Older recordings are deleted within an hour."</p>
                                        </ActionForm>
                                    })}
                                    {move || save.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNote error=e/> })}
                                </section>
                                <section class="card" aria-labelledby="access-title">
                                    <h2 id="access-title">"Asset access"</h2>
                                    <p data-testid="asset-access">
                                        {if m.organisation.asset_access.signed_urls {
                                            format!("Recordings, replays, thumbnails and motion clips are served only through signed URLs the API hands out; each stays valid for {}.",
                                                duration(m.organisation.asset_access.ttl_seconds))
                                        } else {
                                            "Anyone with an asset URL can fetch it.".to_string()
                                        }}
                                        " Public clips' share links work either way."
                                    </p>
                                    {(m.role == "admin").then(|| view! {
                                        <ActionForm action=access>
                                            <div class="clip-fields">
                                                <label class="toggle">
                                                    <input type="checkbox" name="signed" checked=m.organisation.asset_access.signed_urls/>
                                                    "Require signed URLs"
                                                </label>
                                                <label>"Valid for (seconds)"
                                                    <input type="number" name="ttl_seconds" min="60" max="604800"
                                                        value=m.organisation.asset_access.ttl_seconds.to_string()/>
                                                </label>
                                                <button type="submit">"Save"</button>
                                            </div>
                                            <p class="muted">"Saving with signed URLs on makes a new signing key: URLs handed out before stop working."</p>
                                        </ActionForm>
                                    })}
                                    {move || access.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNote error=e/> })}
                                </section>
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </Layout>
    }
}

/// Seconds as the page writes them: "6 h", "90 min", "45 s".
fn duration(seconds: i64) -> String {
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}
