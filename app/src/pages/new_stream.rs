//! `/streams/new`: create a stream group with optional transcoding profiles and its live
//! processing, per profile (tabs), with "Sync settings across profiles" and a summary.

use std::collections::HashMap;

use domain::settings::{profile_quality, PROFILES};
use domain::view::{CreateStream, Transcoding};
use domain::{Processing, ProcessingPatch};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use crate::api::{whoami, CreateStreamGroup};
use crate::components::layout::Layout;
use crate::components::processing_form::{ProcessingForm, Summary};
use crate::components::{ErrorNote, Tabs};

#[component]
pub fn NewStreamPage() -> impl IntoView {
    let name = RwSignal::new(String::new());
    let tags = RwSignal::new(String::new());
    // Profiles of the group in order, passthrough first, each with its own settings.
    let profiles: RwSignal<Vec<(String, RwSignal<Processing>)>> = RwSignal::new(vec![(
        "passthrough".into(),
        RwSignal::new(Processing::default()),
    )]);
    let active = RwSignal::new("passthrough".to_string());
    let synced = RwSignal::new(false);
    let who = Resource::new(|| (), |_| whoami());
    // Without the package, the processes' controls are disabled (the notice says why). Set
    // from an effect, so the server's HTML and the first client render agree (hydration), then
    // the form follows the organisation.
    let upgrade = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(m)) = who.get() {
            upgrade.set(!m.organisation.live_processing_enabled());
        }
    });
    let create = ServerAction::<CreateStreamGroup>::new();

    let toggle_profile = move |profile: &'static str, on: bool| {
        profiles.update(|list| {
            if on && !list.iter().any(|(p, _)| p == profile) {
                let template = list[0].1.get_untracked();
                list.push((profile.to_string(), RwSignal::new(template)));
                // Keep the ladder in PROFILES order.
                list.sort_by_key(|(p, _)| PROFILES.iter().position(|x| x == p));
            } else if !on {
                list.retain(|(p, _)| p != profile);
            }
        });
        if !on && active.get_untracked() == profile {
            active.set("passthrough".into());
        }
    };

    let sync = move |_| {
        let list = profiles.get_untracked();
        if let Some((_, source)) = list.iter().find(|(p, _)| *p == active.get_untracked()) {
            let value = source.get_untracked();
            for (_, s) in &list {
                s.set(value);
            }
            synced.set(true);
        }
    };

    let snapshot = Signal::derive(move || {
        profiles
            .get()
            .iter()
            .map(|(p, s)| (p.clone(), s.get()))
            .collect::<Vec<_>>()
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let list = snapshot.get_untracked();
        let chosen: Vec<String> = list.iter().skip(1).map(|(p, _)| p.clone()).collect();
        let req = CreateStream {
            name: Some(name.get_untracked()),
            tags: tags
                .get_untracked()
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            transcoding: (!chosen.is_empty()).then_some(Transcoding { profiles: chosen }),
            source: None,
            processing: None,
            profile_processing: list
                .into_iter()
                .map(|(p, s)| (p, ProcessingPatch::from(s)))
                .collect::<HashMap<_, _>>(),
        };
        create.dispatch(CreateStreamGroup { req });
    };

    // The "copied" note belongs to the tab it was made on.
    Effect::new(move |_| {
        active.track();
        synced.set(false);
    });

    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = create.value().get() {
            navigate(&format!("/stream/{id}"), Default::default());
        }
    });
    let server_error = move || create.value().get().and_then(Result::err);
    let server_field = Signal::derive(move || server_error().and_then(|e| e.field_error()));

    view! {
        <Title text="New stream"/>
        <Layout>
            <h1>"New stream"</h1>
            <form class="create" on:submit=submit>
                <section class="card form">
                    <label for="name">"Name"</label>
                    <input id="name" type="text" maxlength="200" placeholder="auction-1"
                        on:input=move |ev| name.set(event_target_value(&ev))/>
                    <label for="tags">"Tags (comma separated)"</label>
                    <input id="tags" type="text" placeholder="eu, auctions"
                        on:input=move |ev| tags.set(event_target_value(&ev))/>
                </section>

                <section class="card">
                    <h2>"Transcoding"</h2>
                    <p class="muted">"The passthrough stream always exists; each profile adds a rendition with its own live processing."</p>
                    <div class="profile-choice">
                        {PROFILES[1..].iter().map(|p| {
                            let p: &'static str = p;
                            view! {
                                <label class="chip">
                                    <input type="checkbox" name="profile" value=p
                                        on:change=move |ev| toggle_profile(p, event_target_checked(&ev))/>
                                    {p}" "<span class="muted">{profile_quality(p)}</span>
                                </label>
                            }
                        }).collect_view()}
                    </div>
                </section>

                <section class="card">
                    <div class="section-head">
                        <h2>"Live Processing"</h2>
                        <button type="button" class="secondary" on:click=sync
                            disabled=move || profiles.with(|l| l.len() < 2)>
                            "Sync settings across profiles"
                        </button>
                    </div>
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            let upgrade = who.await.map(|m| !m.organisation.live_processing_enabled()).unwrap_or(false);
                            upgrade.then(|| view! {
                                <p class="note warn">"Live processing: Upgrade needed. Your organisation's package does not include it, so processes cannot be enabled."</p>
                            })
                        })}
                    </Suspense>
                    {move || synced.get().then(|| view! {
                        <p class="note ok" role="status">"Settings of "{active.get()}" copied to every profile."</p>
                    })}
                    <Tabs labels=Signal::derive(move || profiles.with(|l| l.iter().map(|(p, _)| p.clone()).collect())) active/>
                    {move || {
                        let current = active.get();
                        let disabled = upgrade.get();
                        profiles.get().into_iter().find(|(p, _)| *p == current).map(|(p, s)| {
                            let panel_label = format!("{p} settings");
                            view! {
                            <div role="tabpanel" aria-label=panel_label>
                                <ProcessingForm settings=s id_prefix=format!("profile-{p}") server_error=server_field disabled/>
                            </div>
                        }})
                    }}
                </section>

                <Summary profiles=snapshot/>

                {move || server_error().map(|e| view! { <ErrorNote error=e/> })}
                <div class="actions">
                    <a href="/" class="button secondary">"Cancel"</a>
                    <button type="submit" class="primary" disabled=move || create.pending().get()>
                        "Create stream"
                    </button>
                </div>
            </form>
        </Layout>
    }
}
