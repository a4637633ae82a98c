//! Errors at the library edge, each mapped to a documented exit code (README, DESIGN.md).

use std::fmt;

/// One thing a reader or writer cannot handle.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    pub op: String,
    pub node: String,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "unsupported op {} at node '{}': {}",
            self.op, self.node, self.reason
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The model uses things this tool cannot convert; every one is listed (exit 4).
    #[error("{}", unsupported_text(.file, .items))]
    Unsupported {
        file: String,
        items: Vec<Unsupported>,
    },
    /// The converted model computes something else (exit 3).
    #[error("{0}")]
    Verification(String),
    /// Anything else: unreadable or corrupt input, I/O failures (exit 1).
    #[error("{0}")]
    Failed(String),
}

fn unsupported_text(file: &str, items: &[Unsupported]) -> String {
    let mut s = format!(
        "{file}: {} unsupported op(s), nothing written:",
        items.len()
    );
    for u in items {
        s.push_str(&format!("\n  {u}"));
    }
    s
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Failed(_) => 1,
            Error::Usage(_) => 2,
            Error::Verification(_) => 3,
            Error::Unsupported { .. } => 4,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a failure naming what it is about.
pub fn failed(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}
