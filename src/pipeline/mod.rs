//! The library pipeline: one call that reads a model, transforms it, writes what a target loads
//! and checks the result. The CLI's `convert`, `quantize` and `optimize` are this pipeline with
//! other [`Options`]; `mdeploy serve` and Rust users call it the same way.
//!
//! Stages, in order (each optional stage runs only when its options ask for it):
//! 1. read (format detected from content) and [`Graph::verify`];
//! 2. clean-up and fusion passes ([`crate::passes::cleanup`]);
//! 3. pruning, clustering ([`WeightOptions`]);
//! 4. the writer's legalization (layout, lowering);
//! 5. quantization, with calibration ranges measured here by evaluation ([`Quantize`]);
//! 6. the writer's check: everything it cannot express, listed before anything is evaluated
//!    or written;
//! 7. the accuracy report of a transformed graph against its source ([`Accuracy`]);
//! 8. the write (atomic: a failed run leaves nothing);
//! 9. `--verify`: source and written output run on the same inputs ([`Verify`]);
//! 10. the report (returned, and written as JSON when [`Options::report`] is set).
//!
//! The crate documentation has a runnable example.
//!
//! Evaluation on its own is [`load`] + [`run`] (see their example).

mod options;
mod quantize;
mod report;
mod stages;
mod target;
mod weights;

pub use options::{
    Accuracy, Job, OnnxOptions, Options, QuantIo, Quantize, Target, TfjsOptions, TfliteOptions,
    Verify, WeightOptions,
};
pub use quantize::QuantReport;
pub use report::{OpCount, Report, WeightsGzip};
pub(crate) use stages::in_source_order;
pub use stages::{load_inputs, verify_output};
pub use target::default_output;

use crate::error::{Error, Result};
use crate::ir::{Graph, Tensor};
use crate::passes::{self, PassContext};
use crate::readers::{self, ReadOptions};
use std::path::Path;

/// Where a run's progress goes. Every method has a default that ignores it ([`Silent`]).
pub trait Observer {
    /// A stage starts (transient: a spinner's message).
    fn step(&self, _msg: &str) {}
    /// A result line that stays (figures, notes).
    fn line(&self, _msg: &str) {}
    /// Something the user should know even though the run goes on.
    fn warn(&self, _msg: &str) {}
}

/// An observer that drops everything.
pub struct Silent;

impl Observer for Silent {}

/// A model read from a file or folder.
pub struct Loaded {
    /// The reader's name (`onnx`, `keras`, `saved_model`).
    pub format: &'static str,
    pub graph: Graph,
    /// The Keras model as opened, for the TF.js layers writer (which keeps Keras's topology):
    /// the file is read once.
    pub keras: Option<std::sync::Arc<crate::formats::keras::KerasSource>>,
}

/// Reads a model (format detected from content) and verifies the graph the reader made.
pub fn load(input: &Path, opts: &ReadOptions) -> Result<Loaded> {
    let reader = readers::detect(input)?;
    let readers::Model { graph, keras } = reader.read_model(input, opts)?;
    graph.verify().map_err(|e| {
        Error::Failed(format!(
            "{}: reader produced an invalid graph: {e}",
            input.display()
        ))
    })?;
    Ok(Loaded {
        format: reader.name(),
        graph,
        keras,
    })
}

/// Runs a graph on `inputs` (in graph input order) with the reference evaluator (tract).
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    crate::eval::run(g, inputs)
}

/// Runs the whole pipeline as `opts` asks and returns what it did. A result past the
/// verification or accuracy tolerance is still `Ok` (the output is written): see
/// [`Report::check_tolerance`].
pub fn convert(opts: &Options, obs: &dyn Observer) -> Result<Report> {
    obs.step("reading");
    let source = load(&opts.input, &opts.read)?;
    let target = target::resolve(opts, source.format, obs);
    let out = target::output_path(opts, target)?;
    obs.step("transforming");
    let mut g = source.graph.clone();
    let mut ctx = PassContext::default();
    // The clean-up and fusion passes run before every writer (what `mdeploy optimize` reports).
    passes::cleanup(&mut g, &mut ctx)?;
    let weights = weights::transform(opts, &mut g, obs)?;
    let ops = (opts.job == Job::Optimize).then(|| weights::op_table(&source.graph, &g));
    if let Some(ops) = &ops {
        for line in weights::op_lines(ops, source.graph.nodes.len(), g.nodes.len()) {
            obs.line(&line);
        }
    }
    // An optimize run writes its optimized IR, never the source's own topology.
    let from_ir = opts.job == Job::Optimize || weights.changed();
    let chosen = target::writer(opts, target, &source, from_ir, obs)?;
    let writer = chosen.writer.as_ref();
    writer.legalize_verified(&mut g)?;
    let quant = quantize::options(opts, target);
    if quant.is_some() {
        // A model the writer refuses is refused before calibration and evaluation run.
        writer.ensure_writable(&g, &opts.input)?;
    }
    let quantized = match &quant {
        Some(q) => Some(quantize::apply(&mut g, q, opts, obs)?),
        None => None,
    };
    // Everything the writer cannot express is listed before any evaluation or writing.
    writer.ensure_writable(&g, &opts.input)?;
    // The source's samples do not fit a model whose 4-D inputs were made channels-last.
    let nhwc_io = target == Target::Tflite && opts.tflite.nhwc_io;
    let accuracy = stages::accuracy(opts, &source.graph, &g, quantized.is_some(), nhwc_io, obs)?;
    if let (Some(q), Some(q_opts)) = (&quantized, &quant) {
        quantize::finish(&mut g, q, q_opts, obs)?;
        if q.full_integer {
            writer.ensure_writable(&g, &opts.input)?;
        }
    }
    obs.step("writing");
    let written = writer.write(&g, &out)?;
    let nodes_in = source.graph.nodes.len();
    if opts.job != Job::Optimize {
        obs.line(&format!(
            "wrote {} ({} bytes, {} nodes) from {} ({} nodes)",
            out.display(),
            written.bytes,
            written.nodes,
            opts.input.display(),
            nodes_in
        ));
    }
    // TF.js keeps a float IR and stores the weights quantized: as for a quantized IR, the
    // accuracy report (of the folder read back) stands for `--verify`'s exact comparison.
    let stored_quantized = target == Target::Tfjs && opts.quantize.is_some();
    let accuracy = match stored_quantized {
        true => stages::stored_accuracy(opts, &source.graph, &out, obs)?,
        false => accuracy,
    };
    let verify = match &opts.verify {
        Some(_) if stored_quantized => {
            obs.line("the weights are stored quantized: the accuracy report stands for --verify");
            vec![]
        }
        Some(v) if quantized.is_none() => {
            stages::verify(v, &source.graph, &g, &out, &chosen, nhwc_io, obs)?
        }
        _ => vec![],
    };
    // The graphs (and the input's mapping) go before the written files are read back to be
    // sized.
    drop((g, source.graph));
    let mut r = Report::new(opts, source.format, writer.name(), &out, written);
    r.nodes_in = nodes_in;
    r.passes = ctx.stats;
    r.verify = verify;
    r.quantization = quantized;
    r.accuracy = accuracy;
    r.ops = ops;
    r.prune = weights.pruned;
    r.cluster = weights.clustered;
    r.weights_gzip = weights.gzip;
    r.finish(opts, obs)?;
    Ok(r)
}
