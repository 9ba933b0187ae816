//! The dashboard: Leptos pages rendered on the server (then hydrated), its server functions, and
//! the site's static files. Signed-out visitors of dashboard pages are sent to `/login`.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use super::AppState;

pub fn router(state: &AppState) -> axum::Router<AppState> {
    let routes = generate_route_list(app::App);
    let services = state.services.clone();
    let context = move || provide_context(services.clone());
    let options = state.leptos_options.clone();
    axum::Router::new()
        .leptos_routes_with_context(state, routes, context.clone(), move || {
            app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, app::shell))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_sign_in,
        ))
}

/// Pages that need a signed-in user; `/login`, public clip pages, the public watch and embed
/// pages, assets and server functions are not among them.
fn is_private_page(path: &str) -> bool {
    path == "/"
        || [
            "/streams",
            "/stream/",
            "/organisation",
            "/webhooks",
            "/playout/",
            "/replay/",
        ]
        .iter()
        .any(|p| path.starts_with(p))
}

async fn require_sign_in(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() == Method::GET && is_private_page(path) {
        let token = app::auth::session_cookie(req.headers());
        let signed_in = match token {
            Some(t) => matches!(s.services.store.web_principal(&t).await, Ok(Some(_))),
            None => false,
        };
        if !signed_in {
            let next_page = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let target = format!("/login?next={}", app::auth::encode_component(next_page));
            return Redirect::to(&target).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_pages() {
        assert!(is_private_page("/"));
        assert!(is_private_page("/stream/abc"));
        assert!(is_private_page("/streams/new"));
        assert!(!is_private_page("/login"));
        assert!(!is_private_page("/clip/abc"));
        assert!(!is_private_page("/watch/abc"));
        assert!(!is_private_page("/embed/abc"));
        assert!(!is_private_page("/pkg/liveproc.js"));
    }
}
