//! The checking stages: the accuracy report of a transformed graph, and `--verify` of the
//! written output against the source.

use super::options::{Options, Target, Verify};
use super::report::within;
use super::target::Chosen;
use super::Observer;
use crate::error::{Error, Result};
use crate::eval::{self, Comparison};
use crate::ir::{Graph, Tensor, ValueId};
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

/// The accuracy report of a TF.js output whose weights are stored quantized (the IR stays
/// float; the loader dequantizes them), made on the folder `out` read back: what the loader
/// computes is known only from what was written.
pub(super) fn stored_accuracy(
    opts: &Options,
    source: &Graph,
    out: &Path,
    obs: &dyn Observer,
) -> Result<Option<crate::accuracy::Report>> {
    let Some(a) = &opts.accuracy else {
        return Ok(None);
    };
    match read_back(out, source, obs, "TF.js") {
        Some(written) => accuracy(opts, source, &written, true, false, obs),
        None if a.tolerance.is_some() => Err(Error::Failed(format!(
            "{}: --tolerance needs the accuracy report of the written folder, which could not \
             be read back",
            out.display()
        ))),
        None => Ok(None),
    }
}

/// Loads `--input` files in graph input order; inputs without a file get seeded random data
/// (symbolic dimensions set to 2).
pub fn load_inputs(g: &Graph, files: &[(String, PathBuf)], seed: u64) -> Result<Vec<Tensor>> {
    load_inputs_sized(g, files, seed, 2)
}

/// [`load_inputs`] with symbolic dimensions of random inputs set to `size`.
fn load_inputs_sized(
    g: &Graph,
    files: &[(String, PathBuf)],
    seed: u64,
    size: usize,
) -> Result<Vec<Tensor>> {
    let mut inputs = eval::random_inputs(g, seed, size);
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
    if let Some(why) = not_verifiable(chosen, nhwc_io, written) {
        obs.line(why);
        return Ok(vec![]);
    }
    let read_back = match chosen.target {
        Target::Tflite => read_back(out, source, obs, "TFLite"),
        Target::Tfjs => read_back(out, source, obs, "TF.js"),
        Target::SavedModel => read_back(out, source, obs, "SavedModel"),
        Target::Onnx => None,
    };
    if chosen.target == Target::Tfjs && chosen.layers && read_back.is_none() {
        // A layers model is written from the Keras source, not from the graph: nothing else
        // stands for the folder.
        obs.line("verification of this TF.js layers model needs it read back; skipped");
        return Ok(vec![]);
    }
    if read_back.is_none() {
        notes(chosen, out, written, obs)?;
    }
    let written = read_back.as_ref().unwrap_or(written);
    verify_sizes(v, source, obs, &|inputs| {
        run_written(written, out, chosen, inputs)
    })
}

/// Runs the source and `run` (the written output) on the same inputs and compares every
/// output. A model with sizes known only at run time is checked at two sizes of them when the
/// inputs are random (with given inputs, at their sizes).
fn verify_sizes(
    v: &Verify,
    source: &Graph,
    obs: &dyn Observer,
    run: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
) -> Result<Vec<Comparison>> {
    let symbols = input_symbols(source);
    let sizes: &[usize] = if v.inputs.is_empty() && !symbols.is_empty() {
        SIZES
    } else {
        &[2]
    };
    let mut all = Vec::new();
    let mut checked = 0;
    let mut first_error = None;
    for &size in sizes {
        if checked == 2 {
            break;
        }
        let inputs = load_inputs_sized(source, &v.inputs, v.seed, size)?;
        // A size the source model itself cannot run at (a 2×2 image through two stride-2
        // convolutions and back) says nothing about the output: try the next one.
        let expected = match eval::run(source, &inputs) {
            Ok(e) => e,
            Err(e) if sizes.len() > 1 => {
                obs.line(&format!(
                    "verify: size {size} skipped, the source does not run at it: {e}"
                ));
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        checked += 1;
        let label = match sizes.len() {
            1 => String::new(),
            _ => {
                let dims: Vec<String> = symbols.iter().map(|s| format!("{s}={size}")).collect();
                format!(" [{}]", dims.join(", "))
            }
        };
        let got = run(&inputs)?;
        all.extend(compare_all(v, source, got, expected, &label, obs)?);
    }
    match (checked, first_error) {
        (0, Some(e)) => Err(e),
        _ => Ok(all),
    }
}

/// Checks a converted file against its source, as `--verify` does after a conversion: the
/// output (any format mdeploy reads) is read back and run by tract beside the source on the
/// same inputs. `mdeploy verify SOURCE OUTPUT`, also for files other tools wrote.
pub fn verify_output(
    source: &Graph,
    output: &Path,
    v: &Verify,
    obs: &dyn Observer,
) -> Result<Vec<Comparison>> {
    obs.step("reading the output");
    let read = crate::readers::read(output, &crate::readers::ReadOptions::default())?;
    let written = in_source_order(read, source).map_err(|why| {
        Error::Failed(format!(
            "{}: cannot be compared with the source: {why}",
            output.display()
        ))
    })?;
    for (&w, &s) in written.inputs.iter().zip(&source.inputs) {
        if written.ty(w) != source.ty(s) {
            return Err(Error::Failed(format!(
                "{}: input '{}' is {}, the source's is {} (a channels-last TFLite input?); \
                 nothing was compared",
                output.display(),
                source.value(s).name,
                written.ty(w),
                source.ty(s)
            )));
        }
    }
    obs.step("verifying");
    verify_sizes(v, source, obs, &|inputs| eval::run(&written, inputs))
}

/// The sizes tried for dimensions known only at run time, in order, until two of them run:
/// small ones first (batch, sequence length), then ones that deep strided networks accept.
const SIZES: &[usize] = &[2, 3, 16, 32];

/// The symbols in the graph inputs' shapes, in order of first appearance.
fn input_symbols(g: &Graph) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for &i in &g.inputs {
        for d in &g.ty(i).shape {
            if let crate::ir::Dim::Sym(s) = d {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
    }
    out
}

/// The written output's results on `inputs`.
fn run_written(
    written: &Graph,
    out: &Path,
    chosen: &Chosen,
    inputs: &[Tensor],
) -> Result<Vec<Tensor>> {
    match chosen.target {
        // tract computes some QuantizeLinear outputs wrong when it loads the file itself; the
        // read-back graph goes through evaluation's preparation, which writes those as float
        // arithmetic (eval/prepare.rs).
        Target::Onnx if beyond_tract(written) || has_quantize(written) => {
            let opts = crate::readers::ReadOptions::default();
            eval::run(&crate::readers::read(out, &opts)?, inputs)
        }
        Target::Onnx => eval::run_onnx_file(out, inputs),
        // The TFLite file or TF.js folder as mdeploy's reader reads it back when it can
        // (`written` is then that graph), else the graph as written; LiteRT and TF.js
        // themselves run in the conformance tier.
        Target::Tflite | Target::Tfjs | Target::SavedModel => eval::run(written, inputs),
    }
}

/// Compares every output with the source's; `label` names the sizes in the printed lines.
fn compare_all(
    v: &Verify,
    source: &Graph,
    got: Vec<Tensor>,
    expected: Vec<Tensor>,
    label: &str,
    obs: &dyn Observer,
) -> Result<Vec<Comparison>> {
    if got.len() != expected.len() {
        return Err(Error::Verification(format!(
            "output has {} results, source {}",
            got.len(),
            expected.len()
        )));
    }
    let mut comparisons = Vec::new();
    for (i, (g_out, e_out)) in got.iter().zip(&expected).enumerate() {
        let name = format!("{}{label}", source.value(source.outputs[i]).name);
        let c = eval::compare(&name, g_out, e_out);
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

/// The written TFLite file or TF.js folder read back by mdeploy's own reader of that format,
/// its inputs and outputs in the source's order, so that verification runs what the output
/// holds (a writer that wrote a wrong weight is caught); `None`, said in a line, when it cannot
/// be read back that way.
fn read_back(out: &Path, source: &Graph, obs: &dyn Observer, format: &str) -> Option<Graph> {
    let opts = crate::readers::ReadOptions::default();
    let read = crate::readers::read(out, &opts).map_err(|e| e.to_string());
    match read.and_then(|g| in_source_order(g, source)) {
        Ok(g) => {
            obs.line(&format!(
                "the written {} is read back by mdeploy's {format} reader and run",
                if format == "TFLite" { "file" } else { "folder" }
            ));
            Some(g)
        }
        Err(why) => {
            // The reader's first line says why; the ops it lists follow it.
            let why = why.lines().next().unwrap_or_default().trim_end_matches(':');
            obs.line(&format!(
                "not read back ({why}); the graph as written is verified"
            ));
            None
        }
    }
}

/// `g` with its inputs and outputs ordered as `source`'s, matched by name.
pub(crate) fn in_source_order(mut g: Graph, source: &Graph) -> std::result::Result<Graph, String> {
    let order = |mine: &[ValueId], theirs: &[ValueId], what: &str| {
        theirs
            .iter()
            .map(|&t| {
                let name = &source.value(t).name;
                mine.iter()
                    .copied()
                    .find(|&m| g.value(m).name == *name)
                    .ok_or_else(|| format!("the file has no {what} named '{name}'"))
            })
            .collect::<std::result::Result<Vec<_>, String>>()
    };
    let inputs = order(&g.inputs, &source.inputs, "input")?;
    let outputs = order(&g.outputs, &source.outputs, "output")?;
    if inputs.len() != g.inputs.len() || outputs.len() != g.outputs.len() {
        return Err("the file's inputs or outputs differ from the source's".into());
    }
    g.inputs = inputs;
    g.outputs = outputs;
    Ok(g)
}

fn has_quantize(g: &Graph) -> bool {
    g.nodes
        .iter()
        .any(|n| matches!(n.op, crate::ir::Op::QuantizeLinear(_)))
}

/// Whether tract cannot run the graph as an ONNX file by itself: control flow (tract 0.23 has no
/// `Loop` and types `If` only with a constant condition), operands given as inputs, or a one-way
/// reverse LSTM/GRU (tract 0.23 computes some wrong — a reverse LSTM with peepholes — which
/// evaluation's preparation runs forward on reversed data).
fn beyond_tract(g: &Graph) -> bool {
    use crate::ir::{ops::RnnDirection, Op};
    g.nodes.iter().any(|n| match &n.op {
        Op::Dynamic(_) => true,
        Op::Lstm(r) | Op::Gru(r) => r.direction == RnnDirection::Reverse,
        other => !other.bodies().is_empty(),
    })
}

/// Why an output cannot be verified at all, if it cannot.
fn not_verifiable(chosen: &Chosen, nhwc_io: bool, written: &Graph) -> Option<&'static str> {
    let nhwc_inputs = written.inputs.iter().any(|&i| written.ty(i).rank() == 4);
    (chosen.target == Target::Tflite && nhwc_io && nhwc_inputs)
        .then_some("verification is not available for --io-layout nhwc outputs; skipped")
}

/// What `--verify` says once about how it checks. A TFLite output is checked as the graph
/// exactly as serialized (after every TFLite rewrite: layout, folding, lowering), run by tract
/// through ONNX; tract-tflite is only asked to decode the file: its TFLite kernels disagree with
/// LiteRT on valid files (e.g. the cnn_bn fixture), so its numbers are no reference. The
/// conformance tier runs every fixture's .tflite in LiteRT itself.
fn notes(chosen: &Chosen, out: &Path, written: &Graph, obs: &dyn Observer) -> Result<()> {
    match chosen.target {
        Target::Tflite => {
            if let eval::Decoded::NotChecked(why) = eval::decode_tflite_file(out)? {
                obs.line(&format!(
                    "not checked: tract-tflite (the TFLite decoder used to re-read the file) \
                     {why}; the graph as written is verified"
                ));
            }
        }
        Target::Onnx if beyond_tract(written) => obs.line(
            "the written file has control flow, ops whose operands are inputs or reverse \
             recurrent layers, which tract cannot run as loaded; it is read back and run by \
             mdeploy's evaluator",
        ),
        Target::Onnx | Target::Tfjs | Target::SavedModel => {}
    }
    Ok(())
}
