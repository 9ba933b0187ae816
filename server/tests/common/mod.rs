//! Test harness: a fresh liveproc app on a fresh database, driven through `Router::oneshot`.
//!
//! Every scenario runs on SQLite; it also runs on PostgreSQL when `LIVEPROC_TEST_POSTGRES_URL`
//! points at a server (the README's test command starts one and sets it). Each test gets its own
//! PostgreSQL database, so tests run in parallel.

#![allow(dead_code)]

pub mod media;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use clap::Parser;
use serde_json::Value;
use tower::ServiceExt;

pub const OPERATOR_KEY: &str = "test-operator-key-0123456789";

pub struct TestApp {
    pub router: Router,
    pub state: liveproc::http::AppState,
    pub db_url: String,
    _data: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// A server listening on loopback (HTTP and RTMP on free ports) with its API driven in-process.
pub struct Running {
    pub app: TestApp,
    pub http: std::net::SocketAddr,
    pub rtmp: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub async fn start() -> Running {
        Self::start_with(&[]).await
    }

    /// Like [`start`](Self::start), with more command-line flags.
    pub async fn start_with(flags: &[&str]) -> Running {
        // Server logs go to the test's output (shown when it fails).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("liveproc=info,warn")
            .with_test_writer()
            .try_init();
        let data = tempfile::tempdir().expect("temp dir");
        let db_url = format!("sqlite://{}/liveproc.db", data.path().display());
        let mut args = vec![
            "liveproc",
            "--data",
            data.path().to_str().unwrap(),
            "--admin-key",
            OPERATOR_KEY,
            "--http",
            "127.0.0.1:0",
            "--rtmp",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(flags);
        let cfg = liveproc::config::Config::parse_from(args);
        let server = liveproc::Server::bind(&cfg).await.expect("server binds");
        let (http, rtmp) = (server.http, server.rtmp);
        let app = TestApp {
            router: liveproc::http::router(server.state().clone()),
            state: server.state().clone(),
            db_url,
            _data: data,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Running {
            app,
            http,
            rtmp,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful shutdown, as SIGTERM does. The app (and its data folder) stays for checks.
    pub async fn stop(self) -> TestApp {
        let Running {
            app, stop, task, ..
        } = self;
        if let Some(tx) = stop {
            let _ = tx.send(());
        }
        if let Some(task) = task {
            task.await
                .expect("server task")
                .expect("server stops cleanly");
        }
        app
    }
}

impl TestApp {
    /// The data folder (database, assets).
    pub fn data(&self) -> &std::path::Path {
        self._data.path()
    }

    pub async fn new(backend: Backend) -> TestApp {
        let data = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}/liveproc.db", data.path().display()),
            Backend::Postgres(admin) => fresh_postgres(&admin).await,
        };
        let cfg = liveproc::config::Config::parse_from([
            "liveproc",
            "--data",
            data.path().to_str().unwrap(),
            "--database-url",
            &db_url,
            "--admin-key",
            OPERATOR_KEY,
            "--public-url",
            "http://media.test:8080",
            "--rtmp",
            "127.0.0.1:1935",
        ]);
        let state = liveproc::prepare(&cfg).await.expect("app prepares");
        TestApp {
            router: liveproc::http::router(state.clone()),
            state,
            db_url,
            _data: data,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 16 << 20)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, Some(key), None).await
    }
    /// The caller's organisation's events of `kind`, oldest first.
    pub async fn events(&self, key: &str, kind: &str) -> Vec<Value> {
        let a = self.get("/api/v1/events?limit=500", key).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }
    pub async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }
    pub async fn put(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(key), Some(body)).await
    }
    pub async fn delete(&self, path: &str, key: &str) -> Answer {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Runs SQL on the app's database, for what the API does not do itself yet (sessions and
    /// assets are written by the media engine).
    pub async fn sql(&self, statement: &str) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.db_url).await.expect("connect");
        sqlx::query(statement).execute(&pool).await.expect("sql");
        pool.close().await;
    }
}

impl Answer {
    /// Asserts an error answer of the contract's shape and returns its message.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert_eq!(self.body["error"]["code"], code, "code of {}", self.text);
        let message = self.body["error"]["message"]
            .as_str()
            .expect("error.message is a string")
            .to_string();
        assert!(!message.is_empty());
        message
    }
}

#[derive(Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// The PostgreSQL server to test on, if any. On CI it must be there.
pub fn postgres() -> Option<String> {
    match std::env::var("LIVEPROC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must test PostgreSQL: set LIVEPROC_TEST_POSTGRES_URL"
            );
            eprintln!("LIVEPROC_TEST_POSTGRES_URL unset: PostgreSQL half skipped");
            None
        }
    }
}

async fn fresh_postgres(admin: &str) -> String {
    use sqlx::Connection;
    let name = format!("liveproc_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("PostgreSQL reachable at LIVEPROC_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.ok();
    let (base, _) = admin.rsplit_once('/').expect("URL with a database name");
    format!("{base}/{name}")
}

/// Declares one test per backend for an `async fn(Backend)` scenario.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(url) = $crate::common::postgres() {
                        super::$name($crate::common::Backend::Postgres(url)).await;
                    }
                }
            )*
        }
    };
}

/// A free loopback port (bound, then released for a server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls stream `id` through the API until `check` holds on it (at most 30 s).
pub async fn until(r: &Running, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let s = r
            .app
            .get(&format!("/api/v1/stream/{id}"), OPERATOR_KEY)
            .await
            .body;
        if check(&s) {
            return s;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
