//! `/login`: sign in with an API key. A plain form, so it works before (and without) wasm.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::Login;

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_else(|| "/".into());
    let error = move || login.value().get().and_then(Result::err);
    view! {
        <Title text="Sign in"/>
        <main class="page narrow">
            <h1>"Sign in to liveproc"</h1>
            <p class="muted">"Use an API key of your organisation. The server prints the operator key when it first starts."</p>
            <ActionForm action=login attr:class="card form">
                <input type="hidden" name="next" prop:value=next/>
                <label for="api_key">"API key"</label>
                <input id="api_key" name="api_key" type="password" autocomplete="current-password" required/>
                {move || error().map(|e| view! { <p class="field-error" role="alert">{e.message}</p> })}
                <button type="submit" class="primary">"Sign in"</button>
            </ActionForm>
        </main>
    }
}
