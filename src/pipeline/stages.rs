//! The checking stages: the accuracy report of a transformed graph, and `--verify` of the
//! written output against the source.

use super::options::{Options, Target, Verify};
use super::report::within;
use super::target::Chosen;
use super::Observer;
use crate::error::{Error, Result};
use crate::eval::{self, Comparison};
use crate::ir::{Graph, Tensor};
use std::path::{Path, PathBuf};

/// The accuracy report of `result` (the graph exactly as it is written) against `source`, when
/// [`Options::accuracy`] asks for one. Without a tolerance a report that cannot be made is a
/// note (the output is still written); with one it is an error.
pub(super) fn accuracy(
    opts: &Options,
    source: &Graph,
    result: &Graph,
    quantized: bool,
    nhwc_io: bool,
    obs: &dyn Observer,
) -> Result<Option<crate::accuracy::Report>> {
    let Some(a) = &opts.accuracy else {
        return Ok(None);
    };
    if a.only_if_quantized && !quantized {
        return Ok(None);
    }
    // The source's samples do not fit a model whose 4-D inputs were made NHWC.
    if nhwc_io && result.inputs.iter().any(|&i| result.ty(i).rank() == 4) {
        if a.tolerance.is_some() {
            return Err(Error::Usage(
                "--tolerance needs the accuracy report, which --io-layout nhwc outputs do not \
                 have (the source's inputs are channels-first)"
                    .into(),
            ));
        }
        obs.line("note: no accuracy report for --io-layout nhwc outputs");
        return Ok(None);
    }
    obs.step("comparing accuracy");
    match crate::accuracy::compare(source, result, &a.options) {
        Ok(r) => {
            for line in r.lines() {
                obs.line(&line);
            }
            Ok(Some(r))
        }
        Err(e) if a.tolerance.is_none() => {
            obs.line(&format!("note: no accuracy report: {e}"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Loads `--input` files in graph input order; inputs without a file get seeded random data
/// (symbolic dimensions set to 2).
pub fn load_inputs(g: &Graph, files: &[(String, PathBuf)], seed: u64) -> Result<Vec<Tensor>> {
    let mut inputs = eval::random_inputs(g, seed, 2);
    for (name, path) in files {
        let Some(i) = g.inputs.iter().position(|&v| g.value(v).name == *name) else {
            let names: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--input {name}: the model's inputs are {}",
                names.join(", ")
            )));
        };
        let t = crate::npy::read(path).map_err(Error::Failed)?;
        if t.dtype != g.ty(g.inputs[i]).dtype {
            return Err(Error::Usage(format!(
                "--input {name}: file holds {}, the input is {}",
                t.dtype,
                g.ty(g.inputs[i])
            )));
        }
        inputs[i] = t;
    }
    Ok(inputs)
}

/// Runs the source and the written output on the same inputs and compares every output.
pub(super) fn verify(
    v: &Verify,
    source: &Graph,
    written: &Graph,
    out: &Path,
    chosen: &Chosen,
    nhwc_io: bool,
    obs: &dyn Observer,
) -> Result<Vec<Comparison>> {
    obs.step("verifying");
    let inputs = load_inputs(source, &v.inputs, v.seed)?;
    let expected = eval::run(source, &inputs)?;
    let got = match chosen.target {
        Target::Onnx if beyond_tract(written) => {
            obs.line(
                "the written file has control flow or ops whose operands are inputs, which tract \
                 cannot run as loaded; it is read back and run by mdeploy's evaluator",
            );
            let opts = crate::readers::ReadOptions::default();
            Some(eval::run(&crate::readers::read(out, &opts)?, &inputs)?)
        }
        Target::Onnx => Some(eval::run_onnx_file(out, &inputs)?),
        Target::Tflite => tflite_outputs(obs, out, &inputs, nhwc_io, written)?,
        // The graph exactly as written (after the NHWC rewrites), run by tract: TF.js itself
        // runs in the conformance tier (Node).
        Target::Tfjs if chosen.layers => {
            obs.line("verification is not available for TF.js layers models; skipped");
            None
        }
        Target::Tfjs => Some(eval::run(written, &inputs)?),
    };
    let Some(got) = got else {
        return Ok(vec![]);
    };
    if got.len() != expected.len() {
        return Err(Error::Verification(format!(
            "output has {} results, source {}",
            got.len(),
            expected.len()
        )));
    }
    let mut comparisons = Vec::new();
    for (i, (g_out, e_out)) in got.iter().zip(&expected).enumerate() {
        let name = &source.value(source.outputs[i]).name;
        let c = eval::compare(name, g_out, e_out);
        obs.line(&format!(
            "verify {name}: {} values  max_abs {:.3e}  max_rel {:.3e}  cosine {:.6}  {}",
            c.elements,
            c.max_abs,
            c.max_rel,
            c.cosine,
            if within(&c, v.tolerance) {
                "ok"
            } else {
                "FAIL"
            }
        ));
        comparisons.push(c);
    }
    Ok(comparisons)
}

/// Whether tract cannot run the graph as an ONNX file by itself: control flow (tract 0.23 has no
/// `Loop` and types `If` only with a constant condition) or operands given as inputs.
fn beyond_tract(g: &Graph) -> bool {
    g.nodes
        .iter()
        .any(|n| matches!(n.op, crate::ir::Op::Dynamic(_)) || !n.op.bodies().is_empty())
}

/// What `--verify` compares for a TFLite output: the graph exactly as serialized (after every
/// TFLite rewrite: layout, folding, lowering), run by tract through ONNX. tract-tflite is only
/// asked to decode the file: its TFLite kernels disagree with LiteRT on valid files (e.g. the
/// cnn_bn fixture), so its numbers are no reference. The conformance tier runs every fixture's
/// .tflite in LiteRT itself.
fn tflite_outputs(
    obs: &dyn Observer,
    out: &Path,
    inputs: &[Tensor],
    nhwc_io: bool,
    g: &Graph,
) -> Result<Option<Vec<Tensor>>> {
    if nhwc_io && g.inputs.iter().any(|&i| g.ty(i).rank() == 4) {
        obs.line("verification is not available for --io-layout nhwc outputs; skipped");
        return Ok(None);
    }
    if let eval::Decoded::NotChecked(why) = eval::decode_tflite_file(out)? {
        obs.line(&format!(
            "not checked: tract-tflite (the TFLite decoder used to re-read the file) {why}; \
             the graph as written is verified"
        ));
    }
    Ok(Some(eval::run(g, inputs)?))
}
