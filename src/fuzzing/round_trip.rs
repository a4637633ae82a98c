//! The structure-aware fuzz target's check: a random valid graph ([`super::ir_graph`]) goes
//! through what `mdeploy convert` runs for each target — the clean-up passes, then the writer's
//! legalization, check and write — and each writer must either refuse with a message or write a
//! file that mdeploy's own reader of that format reads back into a graph computing what the
//! source computes. Anything else is a finding: [`check`] returns it as `Err`, and the fuzz
//! target panics on it.

use super::ir_graph;
use crate::eval;
use crate::ir::{Graph, Tensor};
use crate::passes::{self, PassContext};
use crate::readers::{self, ReadOptions};
use crate::writers::onnx::OnnxWriter;
use crate::writers::saved_model::SavedModelWriter;
use crate::writers::tfjs::{graph::GraphWriter, FolderOptions};
use crate::writers::tflite::TfliteWriter;
use crate::writers::Writer;
use std::path::Path;

/// Allowed difference per element: `TOLERANCE · max(1, |reference|)`.
pub const TOLERANCE: f64 = 1e-4;

/// What one input did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundTrip {
    /// Why no graph was checked: the bytes made none, or tract cannot run it, or its reference
    /// outputs are not finite.
    pub skipped: Option<&'static str>,
    /// Nodes of the generated graph.
    pub nodes: usize,
    /// Whether its inputs have a symbolic dimension.
    pub symbolic: bool,
    /// The graph's op names (for coverage counts).
    pub ops: Vec<String>,
    /// Targets that wrote a file that read back and matched.
    pub matched: Vec<&'static str>,
    /// Targets that refused, with their message's first line.
    pub refused: Vec<(&'static str, String)>,
}

/// Generates a graph from `data` and checks every writer on it, writing under `dir`. `Err` is a
/// finding: a writer or pass failing without a message, a written file its reader does not
/// read back or run, or outputs that differ.
pub fn check(data: &[u8], dir: &Path) -> Result<RoundTrip, String> {
    let mut u = arbitrary::Unstructured::new(data);
    let Ok(generated) = ir_graph::generate(&mut u) else {
        return Ok(skip("no graph"));
    };
    check_graph(&generated.graph, seed(data), generated.sym_size, dir)
}

/// [`check`] on a given graph, its inputs drawn from `seed` (symbolic dimensions `sym_size`).
pub fn check_graph(g: &Graph, seed: u64, sym_size: usize, dir: &Path) -> Result<RoundTrip, String> {
    let mut r = RoundTrip {
        nodes: g.nodes.len(),
        symbolic: g
            .inputs
            .iter()
            .any(|&i| g.ty(i).shape.iter().any(|d| d.fixed().is_none())),
        ops: g.nodes.iter().map(|n| n.op.name()).collect(),
        ..RoundTrip::default()
    };
    let inputs = eval::random_inputs(g, seed, sym_size);
    let Ok(reference) = eval::run(g, &inputs) else {
        r.skipped = Some("tract cannot run the source graph");
        return Ok(r);
    };
    if reference
        .iter()
        .any(|t| t.to_f64s().iter().any(|v| !v.is_finite()))
    {
        r.skipped = Some("reference output not finite");
        return Ok(r);
    }
    let mut cleaned = g.clone();
    passes::cleanup(&mut cleaned, &mut PassContext::default())
        .map_err(|e| format!("clean-up passes failed on a valid graph: {e}\n{}", text(g)))?;
    let writers: [(Box<dyn Writer>, &str); 4] = [
        (Box::new(OnnxWriter::default()), "model.onnx"),
        (Box::new(TfliteWriter { nhwc_io: false }), "model.tflite"),
        (
            Box::new(GraphWriter {
                folder: FolderOptions::default(),
                generated_by: None,
            }),
            "tfjs",
        ),
        (Box::new(SavedModelWriter), "saved_model"),
    ];
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (w, file) in &writers {
        let out = dir.join(file);
        let name = w.name();
        match super::write_one(w.as_ref(), &cleaned, Path::new("generated"), &out) {
            Err(e) => {
                let msg = e.to_string();
                if !names_a_node(&msg, g) && !names_a_node(&msg, &cleaned) {
                    return Err(format!(
                        "{name}: refused without naming a node or op: {msg}\n{}",
                        text(g)
                    ));
                }
                r.refused.push((name, refusal_reason(&msg)));
            }
            Ok(()) => {
                read_back_and_compare(g, &out, &inputs, &reference)
                    .and_then(|()| writes_the_same_again(w.as_ref(), &cleaned, &out))
                    .map_err(|e| format!("{name}: {e}\n{}", text(g)))?;
                r.matched.push(name);
            }
        }
    }
    Ok(r)
}

/// Whether a refusal names one of `g`'s nodes or ops (the writers list what they cannot write by
/// node and op).
fn names_a_node(msg: &str, g: &Graph) -> bool {
    g.nodes
        .iter()
        .any(|n| msg.contains(n.name.as_str()) || msg.contains(n.op.name().as_str()))
}

/// A refusal's gist for the summary: its first line that is not the writer's preamble.
fn refusal_reason(msg: &str) -> String {
    let lines: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let gist = match lines.as_slice() {
        [first, second, ..] if first.ends_with(':') => second,
        [first, ..] => first,
        [] => "",
    };
    // Without the node's name, so that the summary counts refusals by reason.
    match (gist.find(" at node '"), gist.find("': ")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &gist[..a], &gist[b + 1..]),
        _ => gist.to_string(),
    }
}

/// Writes `g` a second time next to `out` and requires the same files with the same bytes.
fn writes_the_same_again(w: &dyn Writer, g: &Graph, out: &Path) -> Result<(), String> {
    let mut again = out.as_os_str().to_owned();
    again.push(".again");
    let again = Path::new(&again);
    super::write_one(w, g, Path::new("generated"), again)
        .map_err(|e| format!("the second write failed: {e}"))?;
    let (a, b) = (tree(out)?, tree(again)?);
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(&a) != names(&b) {
        return Err(format!(
            "writing twice made different files: {:?} and {:?}",
            names(&a),
            names(&b)
        ));
    }
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        if x != y {
            return Err(format!("writing twice gave different bytes in {name}"));
        }
    }
    Ok(())
}

/// The files under `p` (or `p` itself), by path relative to it, sorted, with their bytes.
fn tree(p: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let io = |e: std::io::Error| format!("{}: {e}", p.display());
    if p.is_file() {
        return Ok(vec![(String::new(), std::fs::read(p).map_err(io)?)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(io)? {
            let path = e.map_err(io)?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(p).unwrap_or(&path).display().to_string();
                out.push((rel, std::fs::read(&path).map_err(io)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn skip(why: &'static str) -> RoundTrip {
    RoundTrip {
        skipped: Some(why),
        ..RoundTrip::default()
    }
}

/// The source graph in the IR's text form, for a finding's message.
fn text(g: &Graph) -> String {
    format!("graph:\n{}", g.to_text())
}

/// Reads `out` back, runs it on `inputs` (matched by name) and compares with `reference`.
fn read_back_and_compare(
    source: &Graph,
    out: &Path,
    inputs: &[Tensor],
    reference: &[Tensor],
) -> Result<(), String> {
    let back = readers::read(out, &ReadOptions::default())
        .map_err(|e| format!("the reader failed on the writer's own output: {e}"))?;
    let back = crate::pipeline::in_source_order(back, source)?;
    let got =
        eval::run(&back, inputs).map_err(|e| format!("the read-back graph does not run: {e}"))?;
    for ((t, r), &o) in got.iter().zip(reference).zip(&source.outputs) {
        let name = &source.value(o).name;
        if t.shape != r.shape {
            return Err(format!(
                "output '{name}' has shape {:?}, the source's {:?}",
                t.shape, r.shape
            ));
        }
        let (a, b) = (t.to_f64s(), r.to_f64s());
        if let Some((i, (x, y))) = a
            .iter()
            .zip(&b)
            .enumerate()
            .find(|(_, (x, y))| !within(**x, **y))
        {
            return Err(format!(
                "output '{name}' differs at element {i}: {x} written, {y} source"
            ));
        }
    }
    Ok(())
}

/// `x` within [`TOLERANCE`] of `y`; NaN is not.
fn within(x: f64, y: f64) -> bool {
    (x - y).abs() <= TOLERANCE * y.abs().max(1.0)
}

/// The inputs' seed: FNV-1a of the bytes, so a replayed input runs on the same data.
pub fn seed(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
