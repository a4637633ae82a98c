//! Integration tests: one binary, topic modules.

mod common;

mod cli;
mod readers;
mod roundtrip;
