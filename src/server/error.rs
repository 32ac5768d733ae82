//! OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`,
//! and its HTTP status: every rejection of the server answers with one.

use std::fmt;

/// A rejected request: the HTTP status and OpenAI's error fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code (400, 401, 404, 405, 413, 429, 500, 501, 503).
    pub status: u16,
    /// What went wrong, naming the cause.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, if any.
    pub param: Option<&'static str>,
    /// A short machine-readable code, if any.
    pub code: Option<&'static str>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 about the field `param`.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", message).param(param)
    }

    /// 400 about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", message)
    }

    /// 401: missing or wrong API key.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "invalid_request_error", message).code("invalid_api_key")
    }

    /// 404: no such route.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "invalid_request_error", message).code("not_found")
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "invalid_request_error", message).code("method_not_allowed")
    }

    /// 413: the body is over the limit.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(413, "invalid_request_error", message).code("request_too_large")
    }

    /// 408-like slow client, answered as 400 (OpenAI has no 408).
    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", message).code("request_timeout")
    }

    /// 429: every permit busy and the queue full (or waited too long).
    pub fn busy(message: impl Into<String>, retry_after: u32) -> ApiError {
        let mut e = ApiError::new(429, "rate_limit_exceeded", message).code("rate_limit_exceeded");
        e.retry_after = Some(retry_after);
        e
    }

    /// 501: a format whose system library is missing.
    pub fn unavailable_format(message: impl Into<String>) -> ApiError {
        ApiError::new(501, "invalid_request_error", message)
            .param("response_format")
            .code("format_unavailable")
    }

    /// 503: the server is shutting down.
    pub fn draining() -> ApiError {
        let mut e =
            ApiError::new(503, "server_error", "the server is shutting down").code("shutting_down");
        e.retry_after = Some(1);
        e
    }

    /// 500: the engine failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "server_error", message)
    }

    /// Set the field at fault.
    #[must_use]
    pub fn param(mut self, param: &'static str) -> ApiError {
        self.param = Some(param);
        self
    }

    /// Set the code.
    #[must_use]
    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }

    /// An engine error as the client's fault (400) or the server's (500).
    pub fn from_engine(e: &crate::Error, param: Option<&'static str>) -> ApiError {
        use crate::ErrorKind as K;
        let mut out = match e.kind() {
            K::InvalidArgument | K::UnknownVoice => ApiError::bad_request(e.to_string()),
            K::Busy | K::Timeout => ApiError::busy(e.to_string(), 1),
            _ => ApiError::internal(e.to_string()),
        };
        if out.status == 400 {
            out.param = param;
        }
        out
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}
