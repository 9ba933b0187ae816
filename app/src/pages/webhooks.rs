//! `/webhooks`: the organisation's webhook endpoints — add one (its signing secret is shown
//! once), send a test event, delete — and each endpoint's delivery log with resend. The log
//! is read again every few seconds while the page is open.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{
    webhooks_with_log, whoami, AddWebhook, RemoveWebhook, ResendDelivery, SendTestEvent,
};
use crate::components::layout::Layout;
use crate::components::{ticker, CopyButton, ErrorNote};

/// How often the delivery log is read again.
const POLL: Duration = Duration::from_secs(2);

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let add = ServerAction::<AddWebhook>::new();
    let remove = ServerAction::<RemoveWebhook>::new();
    let test = ServerAction::<SendTestEvent>::new();
    let resend = ServerAction::<ResendDelivery>::new();
    let tick = ticker(POLL);
    let hooks = Resource::new(
        move || {
            (
                add.version().get(),
                remove.version().get(),
                test.version().get(),
                resend.version().get(),
                tick.get(),
            )
        },
        |_| webhooks_with_log(),
    );
    let who = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="Webhooks"/>
        <Layout>
            <h1>"Webhooks"</h1>
            <p class="muted">"Each event (a stream going live, a recording ready, a new thumbnail…) is POSTed to your endpoints as JSON, at least once, in order per stream, retried for 24 hours. Check the "
                <code>"Liveproc-Signature"</code>" header: "<code>"t=SECONDS,v1=HMAC-SHA256(secret, t + \".\" + body)"</code>
                ", and de-duplicate by "<code>"Liveproc-Event-Id"</code>"."</p>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    who.await.ok().filter(|m| m.can_edit()).map(|_| view! {
                        <section class="card" aria-labelledby="add-title">
                            <h2 id="add-title">"Add an endpoint"</h2>
                            <ActionForm action=add>
                                <div class="clip-fields">
                                    <label>"URL"<input type="url" name="url" required placeholder="https://example.com/hooks/liveproc" data-testid="webhook-url"/></label>
                                    <label>"Secret (optional, at least 32 characters)"<input type="text" name="secret" data-testid="webhook-secret"/></label>
                                    <label>"Event types"<input type="text" name="events" value="*" data-testid="webhook-events"/></label>
                                    <button type="submit" data-testid="webhook-add">"Add endpoint"</button>
                                </div>
                            </ActionForm>
                            {move || add.value().get().map(|r| match r {
                                Ok(hook) => {
                                    let secret = hook.secret.unwrap_or_default();
                                    view! {
                                        <p class="note" role="status">"Signing secret (shown once): "
                                            <code data-testid="webhook-new-secret">{secret.clone()}</code>" "
                                            <CopyButton text=secret label="Copy the signing secret"/></p>
                                    }.into_any()
                                }
                                Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                            })}
                        </section>
                    })
                })}
            </Suspense>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    // Read-only keys see the log; they change nothing.
                    let can_edit = who.await.is_ok_and(|m| m.can_edit());
                    match hooks.await {
                        Ok(list) if list.is_empty() => view! { <p class="card empty">"No endpoints yet."</p> }.into_any(),
                        Ok(list) => list.into_iter().map(|(hook, log)| {
                            let (id, id2) = (hook.id.clone(), hook.id.clone());
                            view! {
                                <section class="card webhook" data-webhook=hook.id.clone()>
                                    <h2><code>{hook.url.clone()}</code></h2>
                                    <p class="muted">{format!("Events: {} · added {}", hook.events.join(", "), hook.created_at)}</p>
                                    {can_edit.then(|| view! {
                                        <p class="actions">
                                            <button type="button" class="secondary" data-testid="webhook-test"
                                                on:click=move |_| { test.dispatch(SendTestEvent { id: id.clone() }); }>"Send test event"</button>
                                            <button type="button" class="secondary"
                                                on:click=move |_| { remove.dispatch(RemoveWebhook { id: id2.clone() }); }>"Delete"</button>
                                        </p>
                                    })}
                                    {if log.is_empty() {
                                        view! { <p class="muted">"No deliveries yet."</p> }.into_any()
                                    } else {
                                        view! {
                                            <div class="table-wrap">
                                                <table class="details deliveries">
                                                    <thead><tr><th>"Event"</th><th>"State"</th><th>"Attempts"</th><th>"Last answer"</th><th>"Created (UTC)"</th><th></th></tr></thead>
                                                    <tbody>
                                                        {log.into_iter().map(|d| {
                                                            let (hook_id, delivery) = (hook.id.clone(), d.id.clone());
                                                            view! {
                                                                <tr data-delivery=d.id.clone() data-state=d.state.clone()>
                                                                    <td><code>{d.event_type.clone()}</code></td>
                                                                    <td><span class=format!("state {}", if d.state == "delivered" { "on" } else { "off" })>{d.state.clone()}</span>
                                                                        {d.next_attempt_at.clone().map(|t| format!(" · next {}", t.replace('T', " ").chars().take(19).collect::<String>()))}</td>
                                                                    <td>{d.attempts}</td>
                                                                    <td>{match (d.last_status, d.last_error.clone()) {
                                                                        (Some(s), None) => s.to_string(),
                                                                        (_, Some(e)) => e,
                                                                        _ => "—".to_string(),
                                                                    }}</td>
                                                                    <td>{d.created_at.replace('T', " ").chars().take(19).collect::<String>()}</td>
                                                                    <td>{can_edit.then(|| view! {
                                                                        <button type="button" class="link"
                                                                            on:click=move |_| { resend.dispatch(ResendDelivery { hook: hook_id.clone(), delivery: delivery.clone() }); }>"Resend"</button>
                                                                    })}</td>
                                                                </tr>
                                                            }
                                                        }).collect_view()}
                                                    </tbody>
                                                </table>
                                            </div>
                                        }.into_any()
                                    }}
                                </section>
                            }
                        }).collect_view().into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Transition>
        </Layout>
    }
}
