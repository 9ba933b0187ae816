//! `/organisation`: the organisation and its enabled packages.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::whoami;
use crate::components::layout::Layout;
use crate::components::ErrorNote;

#[component]
pub fn OrganisationPage() -> impl IntoView {
    let who = Resource::new(|| (), |_| whoami());
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
                            }.into_any()
                        }
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
        </Layout>
    }
}
