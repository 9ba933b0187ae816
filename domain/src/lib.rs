//! liveproc's domain: the settings and their rules, the stream object, the error every front end
//! answers with, and (feature `db`) the store.
//!
//! A crate of its own because both the REST API (`server`) and the dashboard's server functions
//! (`app`, ssr) use the store, while the wasm build needs only the plain types.

pub mod asset_kind;
pub mod error;
pub mod settings;
pub mod view;

#[cfg(feature = "db")]
pub mod auth_failures;
#[cfg(feature = "db")]
pub mod services;
#[cfg(feature = "db")]
pub mod store;
#[cfg(feature = "db")]
pub mod webhook_policy;

pub use asset_kind::AssetKind;
pub use error::ApiError;
pub use settings::{FieldError, Processing, ProcessingPatch};
