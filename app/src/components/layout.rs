//! The frame around signed-in pages: header with navigation, organisation and sign-out.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{whoami, Logout};

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let who = Resource::new(|| (), |_| whoami());
    let logout = ServerAction::<Logout>::new();
    view! {
        <header class="top">
            <a class="brand" href="/">"liveproc"</a>
            <nav>
                <A href="/" exact=true>"Streams"</A>
                // Read-only keys make nothing: no "New stream" for them.
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        who.await.ok().filter(|m| m.can_edit()).map(|_| view! {
                            <A href="/streams/new">"New stream"</A>
                        })
                    })}
                </Suspense>
                <A href="/webhooks">"Webhooks"</A>
                <A href="/organisation">"Organisation"</A>
            </nav>
            <div class="who">
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        who.await.ok().map(|m| view! {
                            <span class="org">{m.organisation.name.clone()}</span>
                            <span class="role">{m.role.clone()}</span>
                        })
                    })}
                </Suspense>
                <ActionForm action=logout>
                    <button type="submit" class="link">"Sign out"</button>
                </ActionForm>
            </div>
        </header>
        <main class="page">{children()}</main>
    }
}
