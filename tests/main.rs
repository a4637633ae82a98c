//! Integration tests: one binary, topic modules.

mod common;

mod cli;
mod corrupt;
mod readers;
mod roundtrip;
