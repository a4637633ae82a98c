//! mdeploy: read a trained model, check and transform it, write what a deployment target loads.
//!
//! The library is the pipeline the `mdeploy` command runs ([`pipeline`]): a reader makes an
//! [`ir::Graph`]; passes transform it (each verified); a writer legalizes and writes it;
//! [`eval`] runs graphs through tract to check results numerically. Readers and writers do not
//! know each other: what both need of a format lives in [`formats`] and [`ir`].
//!
//! Convert an ONNX model to TFLite and verify it (the source and the written graph run on the
//! same inputs), then run the source model itself:
//!
//! ```
//! use mdeploy::pipeline::{self, Options, Target, Verify};
//!
//! let model = "fixtures/onnx/mlp/model.onnx";
//! let out = std::env::temp_dir().join(format!("mdeploy-doc-{}.tflite", std::process::id()));
//! let mut opts = Options::new(model, Target::Tflite);
//! opts.output = Some(out.clone());
//! opts.verify = Some(Verify::default());
//! let report = pipeline::convert(&opts, &pipeline::Silent)?;
//! report.check_tolerance()?; // exit code 3 in the CLI
//! assert_eq!(report.verify.len(), 1);
//! assert!(report.verify[0].max_rel <= 1e-4 && report.bytes > 0);
//!
//! let source = pipeline::load(model.as_ref(), &Default::default())?;
//! let inputs = mdeploy::eval::random_inputs(&source.graph, 0, 1);
//! let outputs = pipeline::run(&source.graph, &inputs)?;
//! assert_eq!(outputs.len(), source.graph.outputs.len());
//! # std::fs::remove_file(&out).ok();
//! # Ok::<(), mdeploy::error::Error>(())
//! ```

pub mod accuracy;
pub mod error;
pub mod eval;
pub mod formats;
pub mod fuzzing;
pub mod gen;
pub mod ir;
pub mod npy;
pub mod parallel;
pub mod passes;
pub mod pipeline;
pub mod readers;
pub mod serve;
pub mod writers;
