//! What can go wrong talking to the hub, sorted into what the cache may stand in for (the hub
//! could not be reached) and what is reported as it is.

use hf_hub::api::sync::ApiError;

use crate::error::Error;

/// Why an online fetch stopped.
pub(super) enum Fail {
    /// The hub could not be reached (or failed on its side): the cache may stand in.
    Network(String),
    /// Anything else: reported as is.
    Fatal(Error),
}

/// A hub request that failed, classified.
pub(super) enum Failure {
    /// No HTTP answer: connection refused, DNS, TLS, reset, timeout.
    Network(String),
    /// An HTTP error status, with the hub's `X-Error-Code` when it sent one.
    Status {
        code: u16,
        error_code: Option<String>,
    },
    /// Anything else (a server that is not a hub, the local cache, a lock).
    Other(String),
}

impl Failure {
    pub(super) fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { code: 404, .. })
    }
}

/// Runs an hf-hub call, turning a panic inside it into a failure: hf-hub 0.4.3 unwraps a few
/// things a broken server controls (a redirect without `Location`, for one).
pub(super) fn guarded<T>(
    call: impl FnOnce() -> std::result::Result<T, Failure>,
) -> std::result::Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        Err(Failure::Other(format!(
            "the hub client failed on an unexpected answer ({what})"
        )))
    })
}

pub(super) fn classify(err: ApiError) -> Failure {
    match err {
        ApiError::RequestError(e) => {
            let e = *e;
            let text = e.to_string();
            let kind = e.kind().to_string();
            let source = std::error::Error::source(&e).map(|s| s.to_string());
            match e.into_response() {
                Some(response) => Failure::Status {
                    code: response.status(),
                    error_code: response.header("x-error-code").map(str::to_string),
                },
                None => Failure::Network(match source {
                    Some(source) => format!("{}: {source}", kind.to_lowercase()),
                    None => text,
                }),
            }
        }
        ApiError::TooManyRetries(inner) => classify(*inner),
        ApiError::IoError(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Failure::Network(format!("transfer broke off: {e}"))
        }
        ApiError::IoError(e) => Failure::Other(format!("I/O error: {e}")),
        ApiError::MissingHeader(h) => Failure::Other(format!(
            "the server sent no `{h}` header (is the endpoint a Hugging Face hub or mirror?)"
        )),
        ApiError::InvalidHeader(h) => {
            Failure::Other(format!("the server sent an invalid `{h}` header"))
        }
        ApiError::ParseIntError(e) => Failure::Other(format!(
            "the server sent an invalid Content-Range header ({e})"
        )),
        ApiError::InvalidResume => Failure::Other(
            "a partial download (`blobs/*.part`) is larger than the file; delete it and retry"
                .into(),
        ),
        ApiError::LockAcquisition(lock) => Failure::Other(format!(
            "another process is downloading it (lock {}); wait for it or delete the lock",
            lock.display()
        )),
        #[allow(unreachable_patterns)]
        other => Failure::Other(other.to_string()),
    }
}
