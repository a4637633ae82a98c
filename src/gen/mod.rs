//! Generated bindings only (`cargo xtask codegen` from `schemas/`); never edited by hand. Lints
//! are allowed here alone.

#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]
pub mod tensor_bundle;

#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]
pub mod tf_serving;

#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]
pub mod kserve;
