//! `/organisation`: the organisation and its enabled packages.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{whoami, SetRecordingRetention};
use crate::components::layout::Layout;
use crate::components::ErrorNote;

#[component]
pub fn OrganisationPage() -> impl IntoView {
    let save = ServerAction::<SetRecordingRetention>::new();
    let who = Resource::new(move || save.version().get(), |_| whoami());
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
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </Layout>
    }
}
