//! The one error that crosses every boundary: REST answers, server functions and the dashboard.

use serde::{Deserialize, Serialize};

use crate::settings::FieldError;

/// Serialised by the REST API as `{"error": {"code", "message", "field"?}}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    /// snake_case, stable: clients branch on it.
    pub code: String,
    /// A human sentence.
    pub message: String,
    /// The setting a range error is about (`thumbnail.interval`), for forms.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "unauthorized",
            "a valid API key is required (header X-API-Key)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    pub fn upgrade_needed() -> Self {
        Self::new(
            403,
            "upgrade_needed",
            "live processing is not part of this organisation's packages (upgrade needed)",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    /// The range error inside, for a form to show next to its field.
    pub fn field_error(&self) -> Option<FieldError> {
        self.field.clone().map(|field| FieldError {
            field,
            message: self.message.clone(),
        })
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "internal",
            "internal error; the server log has details",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError {
            status: 400,
            code: "out_of_range".into(),
            message: e.message,
            field: Some(e.field),
        }
    }
}

/// Server functions answer with the same error as the REST API, so the dashboard can show a
/// range error next to its field.
impl server_fn::error::FromServerFnError for ApiError {
    type Encoder = server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: server_fn::error::ServerFnErrorErr) -> Self {
        ApiError::new(500, "request_failed", value.to_string())
    }
}
