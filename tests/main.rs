//! Integration tests: one binary, topic modules.

mod common;

mod accuracy;
mod cli;
mod control;
mod corrupt;
mod dynamic;
mod fuzz_replay;
mod install;
mod ir_fuzz;
mod keras;
mod layering;
mod optimize;
mod passes;
mod quantize;
mod readers;
mod resources;
mod roundtrip;
mod saved_model;
mod saved_model_writer;
mod serve;
mod tfjs;
mod tfjs_layers;
mod tfjs_reader;
mod tflite;
mod tflite_reader;
mod untrusted;
mod verify;
