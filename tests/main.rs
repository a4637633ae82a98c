//! Integration tests: one binary, topic modules.

mod common;

mod accuracy;
mod cli;
mod corrupt;
mod keras;
mod passes;
mod readers;
mod roundtrip;
mod saved_model;
mod tfjs;
mod tfjs_layers;
mod tflite;
