//! What went wrong with a request, once, mapped to each API's way of saying it: an HTTP status
//! for REST (TF Serving's and KServe's) and a gRPC status code.

/// The kinds of failure a request can meet (gRPC's canonical codes, which TF Serving's REST API
/// also maps to HTTP statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    NotFound,
    Unavailable,
    Unauthenticated,
    PermissionDenied,
    ResourceExhausted,
    TooLarge,
    DeadlineExceeded,
    Unimplemented,
    Internal,
}

impl Code {
    pub fn http(self) -> u16 {
        match self {
            Code::InvalidArgument => 400,
            Code::NotFound => 404,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::TooLarge => 413,
            Code::DeadlineExceeded => 504,
            Code::Unimplemented => 501,
            Code::Internal => 500,
        }
    }

    /// gRPC's numeric status code.
    pub fn grpc(self) -> u32 {
        match self {
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted | Code::TooLarge => 8,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::Unauthenticated => 16,
        }
    }

    /// The name TF Serving's REST status reports use (`error_code`).
    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::NotFound => "NOT_FOUND",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted | Code::TooLarge => "RESOURCE_EXHAUSTED",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
        }
    }
}

/// A failed request: its kind and a message naming what was wrong.
#[derive(Clone, Debug)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Status {
        Status::new(Code::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Status {
        Status::new(Code::NotFound, message)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

pub type Reply<T> = std::result::Result<T, Status>;
