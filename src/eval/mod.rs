//! Evaluation: IR → in-memory ONNX → tract-onnx. Used by `--verify`, the accuracy report,
//! calibration and tests. mdeploy has no kernels of its own. Graphs with more weights than
//! [`pieces::PIECE_BYTES`] run in pieces, so tract never holds a copy of all of them at once.

mod control;
mod engine;
pub mod pieces;
mod prepare;
mod ranges;
mod specialize;
mod tflite_readback;

pub use engine::Engine;
pub use ranges::measure_ranges;

use crate::error::{failed, Result};
use crate::ir::{DType, Dim, Graph, Tensor, TensorType, ValueId};
use crate::writers::onnx::OnnxWriter;
use bytes::Bytes;
use tract_onnx::prelude::{self as tp, Framework, InferenceFact, InferenceModelExt, IntoTValue};
use tract_onnx::tract_core::model::IntoRunnable;

pub use tflite_readback::{decode_tflite_file, Decoded};

fn datum(dtype: DType) -> tp::DatumType {
    match dtype {
        DType::F32 => tp::DatumType::F32,
        DType::F16 => tp::DatumType::F16,
        DType::BF16 => tp::DatumType::F16,
        DType::F64 => tp::DatumType::F64,
        DType::I8 => tp::DatumType::I8,
        DType::U8 => tp::DatumType::U8,
        DType::I16 => tp::DatumType::I16,
        DType::U16 => tp::DatumType::U16,
        DType::I32 => tp::DatumType::I32,
        DType::U32 => tp::DatumType::U32,
        DType::I64 => tp::DatumType::I64,
        DType::U64 => tp::DatumType::U64,
        DType::Bool => tp::DatumType::Bool,
    }
}

fn from_datum(dt: tp::DatumType) -> Option<DType> {
    Some(match dt {
        tp::DatumType::F32 => DType::F32,
        tp::DatumType::F16 => DType::F16,
        tp::DatumType::F64 => DType::F64,
        tp::DatumType::I8 => DType::I8,
        tp::DatumType::U8 => DType::U8,
        tp::DatumType::I16 => DType::I16,
        tp::DatumType::U16 => DType::U16,
        tp::DatumType::I32 => DType::I32,
        tp::DatumType::U32 => DType::U32,
        tp::DatumType::I64 => DType::I64,
        tp::DatumType::U64 => DType::U64,
        tp::DatumType::Bool => DType::Bool,
        _ => return None,
    })
}

/// Runs ONNX model bytes on `inputs` (in graph input order) with tract.
pub fn run_onnx_bytes(model: &[u8], inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let m = tract_onnx::onnx()
        .model_for_read(&mut &model[..])
        .map_err(|e| failed(format!("evaluation failed: {e:#}")))?;
    run_model(m, inputs)
}

fn run_model(m: tp::InferenceModel, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let plan = plan_for(m, inputs)?;
    run_plan(&plan, inputs)
}

type Plan = std::sync::Arc<tp::TypedRunnableModel>;

fn tract_err(e: tp::TractError) -> crate::error::Error {
    failed(format!("evaluation failed: {e:#}"))
}

/// Runs `f`, turning a panic inside tract into an evaluation error: tract 0.23 asserts on some
/// inputs instead of failing (a max pool whose window is larger than a 1×1 input: "chunk size
/// must be non-zero"), and `--verify` tries sizes the source may not run at. The panic message
/// is not printed for these (the error carries it).
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    use std::cell::Cell;
    thread_local! {
        static IN_TRACT: Cell<bool> = const { Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TRACT.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = IN_TRACT.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_TRACT.with(|c| c.set(was));
    r.unwrap_or_else(|payload| {
        let msg = (payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(failed(format!(
            "evaluation failed: tract stopped on an internal check ({msg})"
        )))
    })
}

/// An optimized, runnable form of `m` for inputs of exactly the types of `inputs`.
fn plan_for(m: tp::InferenceModel, inputs: &[Tensor]) -> Result<Plan> {
    guarded(|| plan_for_unguarded(m, inputs))
}

fn plan_for_unguarded(mut m: tp::InferenceModel, inputs: &[Tensor]) -> Result<Plan> {
    for (i, t) in inputs.iter().enumerate() {
        m.set_input_fact(i, InferenceFact::dt_shape(datum(t.dtype), t.shape.clone()))
            .map_err(tract_err)?;
    }
    let typed = m.into_typed().map_err(tract_err)?;
    // Before tract folds constants or allocates anything: every value's size is known now.
    within_limit(&typed)?;
    typed
        .into_optimized()
        .map_err(tract_err)?
        .into_runnable()
        .map_err(tract_err)
}

/// The most bytes one value may take in evaluation (`--verify`, calibration, accuracy reports)
/// unless `MDEPLOY_EVAL_MAX_MB` says otherwise: a model whose declared sizes ask for more (a
/// lying shape, a huge ConstantOfShape/Expand/Tile/Range) is refused before anything is
/// allocated instead of exhausting memory.
pub const EVAL_MAX_BYTES: u64 = 2 << 30;

fn eval_max_bytes() -> u64 {
    std::env::var("MDEPLOY_EVAL_MAX_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(EVAL_MAX_BYTES, |mb| mb.saturating_mul(1 << 20))
}

/// Refuses a graph any of whose computed values has a fixed declared size past the limit:
/// tract folds constant subgraphs (a ConstantOfShape or Range of constants) while it types the
/// model, before [`within_limit`] could look.
fn declared_within_limit(g: &Graph) -> Result<()> {
    let limit = eval_max_bytes();
    for v in g.values.iter().filter(|v| v.constant.is_none()) {
        let Some(elements) =
            v.ty.shape
                .iter()
                .try_fold(1u64, |n, d| Some(n.saturating_mul(d.fixed()?)))
        else {
            continue;
        };
        let bytes = elements.saturating_mul(v.ty.dtype.size() as u64);
        if bytes > limit {
            return Err(refusal(
                &v.name,
                &format!("{}", v.ty),
                elements,
                bytes,
                limit,
            ));
        }
    }
    Ok(())
}

fn refusal(name: &str, shape: &str, elements: u64, bytes: u64, limit: u64) -> crate::error::Error {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    failed(format!(
        "evaluation refused: '{name}' would hold {shape} = {elements} elements ({:.1} GiB), past \
         the {:.1} GiB a value may take (MDEPLOY_EVAL_MAX_MB raises it)",
        gib(bytes),
        gib(limit)
    ))
}

/// Refuses a typed model any of whose values (with concrete shapes) is past the limit.
fn within_limit(m: &tp::TypedModel) -> Result<()> {
    let limit = eval_max_bytes();
    for node in m.nodes() {
        for out in &node.outputs {
            let Some(shape) = out.fact.shape.as_concrete() else {
                continue;
            };
            let elements = shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
            let bytes = elements.saturating_mul(out.fact.datum_type.size_of() as u64);
            if bytes > limit {
                let shape = format!("{shape:?}");
                return Err(refusal(&node.name, &shape, elements, bytes, limit));
            }
        }
    }
    Ok(())
}

fn run_plan(plan: &Plan, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    guarded(|| run_plan_unguarded(plan, inputs))
}

fn run_plan_unguarded(plan: &Plan, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let mut values = tp::TVec::new();
    for t in inputs {
        // SAFETY-free path: from_raw_dt copies and checks the byte count against the shape.
        let tt = unsafe { tp::Tensor::from_raw_dt(datum(t.dtype), &t.shape, &t.data) }
            .map_err(tract_err)?;
        values.push(tt.into_tvalue());
    }
    let outs = plan.run(values).map_err(tract_err)?;
    outs.iter()
        .map(|o| {
            // tract computes shapes as symbolic dims; a value holding one (a Shape output that a
            // piece hands to the next) is an i64 tensor in ONNX.
            let cast;
            let o = if o.datum_type() == tp::DatumType::TDim {
                cast = o.cast_to_dt(tp::DatumType::I64).map_err(tract_err)?;
                &*cast
            } else {
                &**o
            };
            let dt = from_datum(o.datum_type())
                .ok_or_else(|| failed(format!("unsupported output type {:?}", o.datum_type())))?;
            Tensor::new(dt, o.shape().to_vec(), Bytes::copy_from_slice(o.as_bytes()))
                .map_err(failed)
        })
        .collect()
}

/// Runs an IR graph on `inputs`.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let mut out = Vec::new();
    run_batches(g, &[], &[inputs.to_vec()], |_, v| {
        out = v;
        Ok(())
    })?;
    Ok(out)
}

/// Gives back the resident pages of `g`'s weights that lie in a mapped input file: tract holds
/// its own copy of them now (see [`crate::ir::mapped::release_pages`]).
fn release_constants(g: &Graph) {
    for v in &g.values {
        if let Some(t) = &v.constant {
            crate::ir::mapped::release_pages(&t.data);
        }
    }
}

/// The graph as a tract model, built from the ONNX message without serializing it.
fn load(g: &Graph) -> Result<tp::InferenceModel> {
    let mut g = g.clone();
    prepare::for_tract(&mut g);
    let proto = OnnxWriter::default().to_proto(&g)?;
    drop(g);
    tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .map_err(|e| failed(format!("evaluation failed: {e:#}")))
}

/// Runs `g` on several batches (each one tensor per graph input), with the values `extra` also
/// returned after the graph's outputs (intermediate values, for per-layer comparisons). Results
/// are handed to `each(batch index, values)` in batch order.
///
/// A graph whose weights fit one piece is built once and planned once per distinct input shape,
/// and each batch's values are handed on as they come. A larger one runs in pieces
/// ([`pieces`]), one piece in tract at a time.
pub fn run_batches(
    g: &Graph,
    extra: &[ValueId],
    batches: &[Vec<Tensor>],
    each: impl FnMut(usize, Vec<Tensor>) -> Result<()>,
) -> Result<()> {
    run_batches_in_pieces(g, extra, batches, pieces::PIECE_BYTES, each)
}

/// [`run_batches`] with pieces of at most `piece_bytes` of weights (counted as float32).
pub fn run_batches_in_pieces(
    g: &Graph,
    extra: &[ValueId],
    batches: &[Vec<Tensor>],
    piece_bytes: usize,
    mut each: impl FnMut(usize, Vec<Tensor>) -> Result<()>,
) -> Result<()> {
    let declared: Vec<(String, TensorType)> = g
        .outputs
        .iter()
        .chain(extra)
        .map(|&v| (g.value(v).name.clone(), g.ty(v).clone()))
        .collect();
    run_any(g, extra, batches, piece_bytes, &mut |i, values| {
        check_declared(&declared, &values)?;
        each(i, values)
    })
}

/// Every evaluated value has the rank and the fixed sizes its graph declares: an evaluator that
/// silently computed something smaller (a size that overflowed to 0) is caught here, instead of
/// a comparison of two empty tensors passing.
fn check_declared(declared: &[(String, TensorType)], values: &[Tensor]) -> Result<()> {
    for ((name, ty), t) in declared.iter().zip(values) {
        let fits = t.shape.len() == ty.rank()
            && ty
                .shape
                .iter()
                .zip(&t.shape)
                .all(|(d, &n)| d.fixed().is_none_or(|f| f == n as u64));
        if !fits {
            return Err(failed(format!(
                "evaluation gave '{name}' the shape {:?}, but the graph declares {ty}; \
                 nothing was compared",
                t.shape
            )));
        }
    }
    Ok(())
}

type Each<'a> = &'a mut dyn FnMut(usize, Vec<Tensor>) -> Result<()>;

fn run_any(
    g: &Graph,
    extra: &[ValueId],
    batches: &[Vec<Tensor>],
    piece_bytes: usize,
    each: Each,
) -> Result<()> {
    let bound = specialize::operand_inputs(g);
    if !bound.is_empty() {
        return run_specialized(g, &bound, extra, batches, piece_bytes, each);
    }
    declared_within_limit(g)?;
    let mut g = g.clone();
    // Graph inputs and outputs as a mask: calibration exposes every activation at once.
    let mut boundary = vec![false; g.values.len()];
    for &v in g.inputs.iter().chain(&g.outputs) {
        boundary[v.0] = true;
    }
    for &v in extra {
        if boundary.get(v.0).copied().unwrap_or(true) || g.constant(v).is_some() {
            return Err(failed(format!(
                "'{}' is a graph input, output or constant; only intermediate values can be exposed",
                g.value(v).name
            )));
        }
        boundary[v.0] = true;
        g.outputs.push(v);
    }
    crate::writers::onnx::legalize(&mut g)?;
    let wanted = g.outputs.clone();
    pieces::place_constant_nodes_late(&mut g);
    let split = pieces::split(&g, &wanted, piece_bytes);
    if !split.is_empty() && pieces::run(&g, &split, &wanted, batches, &mut *each)? {
        return Ok(());
    }
    drop(split);
    let model = load(&g)?;
    release_constants(&g);
    drop(g);
    let mut planned: Option<(Vec<Vec<usize>>, Plan)> = None;
    for (i, batch) in batches.iter().enumerate() {
        let shapes: Vec<Vec<usize>> = batch.iter().map(|t| t.shape.clone()).collect();
        if planned.as_ref().is_none_or(|(s, _)| *s != shapes) {
            // The previous plan's memory goes before the next one is built.
            drop(planned.take());
            planned = Some((shapes, plan_for(model.clone(), batch)?));
        }
        let Some((_, plan)) = &planned else {
            continue;
        };
        each(i, run_plan(plan, batch)?)?;
    }
    Ok(())
}

/// A graph run again and again (a loop body, once per iteration): loaded into tract once and
/// planned once per distinct input shapes, instead of both on every run.
pub(crate) struct Reusable {
    model: tp::InferenceModel,
    declared: Vec<(String, TensorType)>,
    planned: Option<(Vec<Vec<usize>>, Plan)>,
}

impl Reusable {
    /// `None` for a graph that needs more than one tract model (control flow, operands bound
    /// per run, weights past one piece): [`run`] handles those.
    pub(crate) fn new(g: &Graph) -> Result<Option<Reusable>> {
        if control::has_control(g) || !specialize::operand_inputs(g).is_empty() {
            return Ok(None);
        }
        let declared = g
            .outputs
            .iter()
            .map(|&v| (g.value(v).name.clone(), g.ty(v).clone()))
            .collect();
        let mut g = g.clone();
        crate::writers::onnx::legalize(&mut g)?;
        let wanted = g.outputs.clone();
        if !pieces::split(&g, &wanted, pieces::PIECE_BYTES).is_empty() {
            return Ok(None);
        }
        Ok(Some(Reusable {
            model: load(&g)?,
            declared,
            planned: None,
        }))
    }

    pub(crate) fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape.clone()).collect();
        if self.planned.as_ref().is_none_or(|(s, _)| *s != shapes) {
            drop(self.planned.take());
            self.planned = Some((shapes, plan_for(self.model.clone(), inputs)?));
        }
        let Some((_, plan)) = &self.planned else {
            return Err(failed("no plan"));
        };
        let out = run_plan(plan, inputs)?;
        check_declared(&self.declared, &out)?;
        Ok(out)
    }
}

/// [`run_batches_in_pieces`] for a graph whose run-time operands come from the graph inputs at
/// `bound`: each run of batches with the same values there runs a graph with them bound.
fn run_specialized(
    g: &Graph,
    bound: &[usize],
    extra: &[ValueId],
    batches: &[Vec<Tensor>],
    piece_bytes: usize,
    each: Each,
) -> Result<()> {
    let mut start = 0;
    while start < batches.len() {
        let first = &batches[start];
        let same = |b: &Vec<Tensor>| bound.iter().all(|&i| b.get(i) == first.get(i));
        let end = start + batches[start..].iter().take_while(|b| same(b)).count();
        let (fixed, _) = specialize::split_batch(bound, first);
        let specialized = specialize::bind(g, bound, &fixed).map_err(failed)?;
        let rest: Vec<Vec<Tensor>> = batches[start..end]
            .iter()
            .map(|b| specialize::split_batch(bound, b).1)
            .collect();
        run_any(&specialized, extra, &rest, piece_bytes, &mut |i, v| {
            each(start + i, v)
        })?;
        start = end;
    }
    Ok(())
}

/// Seeded pseudo-random inputs for every graph input; symbolic dims take `sym_size`.
pub fn random_inputs(g: &Graph, seed: u64, sym_size: usize) -> Vec<Tensor> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    g.inputs
        .iter()
        .map(|&i| {
            let ty = g.ty(i);
            let shape: Vec<usize> = ty
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n as usize,
                    Dim::Sym(_) => sym_size,
                })
                .collect();
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
                    if ty.dtype.is_float() {
                        u * 2.0 - 1.0
                    } else {
                        (u * 2.0).floor()
                    }
                })
                .collect();
            Tensor::from_f64s(ty.dtype, shape, &v)
        })
        .collect()
}

/// How close an output is to a reference.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    pub name: String,
    pub max_abs: f64,
    /// `max_abs / max|reference|`.
    pub max_rel: f64,
    pub cosine: f64,
    pub shape_matches: bool,
    /// How many elements were compared (over every batch).
    pub elements: u64,
}

pub fn compare(name: &str, got: &Tensor, reference: &Tensor) -> Comparison {
    let mut stats = ErrorStats::default();
    stats.add(got, reference);
    stats.finish(name)
}

/// Error statistics of one value accumulated over batches: [`compare`] is one batch of it.
#[derive(Default)]
pub struct ErrorStats {
    max_abs: f64,
    max_ref: f64,
    dot: f64,
    na: f64,
    nb: f64,
    shape_differs: bool,
    elements: u64,
}

impl ErrorStats {
    pub fn add(&mut self, got: &Tensor, reference: &Tensor) {
        if got.shape != reference.shape {
            self.shape_differs = true;
            return;
        }
        let (got, reference) = (got.to_f64s(), reference.to_f64s());
        if got.len() != reference.len() {
            self.shape_differs = true;
            return;
        }
        self.elements += got.len() as u64;
        for (x, y) in got.iter().zip(reference) {
            let d = if x.is_nan() && y.is_nan() {
                0.0
            } else {
                (x - y).abs()
            };
            self.max_abs = self.max_abs.max(if d.is_nan() { f64::INFINITY } else { d });
            self.max_ref = self.max_ref.max(y.abs());
            self.dot += x * y;
            self.na += x * x;
            self.nb += y * y;
        }
    }

    pub fn finish(&self, name: &str) -> Comparison {
        let cosine = if self.na == 0.0 && self.nb == 0.0 {
            1.0
        } else {
            self.dot / (self.na.sqrt() * self.nb.sqrt()).max(f64::MIN_POSITIVE)
        };
        Comparison {
            name: name.to_string(),
            max_abs: self.max_abs,
            max_rel: if self.max_abs == 0.0 {
                0.0
            } else {
                self.max_abs / self.max_ref.max(1e-12)
            },
            cosine,
            shape_matches: !self.shape_differs,
            elements: self.elements,
        }
    }
}

/// Runs an ONNX file (external data resolved beside it by tract) on `inputs`.
pub fn run_onnx_file(path: &std::path::Path, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let m = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| failed(format!("{}: tract cannot load it: {e:#}", path.display())))?;
    run_model(m, inputs)
}

#[cfg(test)]
mod panic_tests {
    use super::*;
    use crate::ir::ops::{Padding, Pool, PoolKind};
    use crate::ir::{Dim, Layout, Op};

    /// A max pool of an empty image (what a stride-2 convolution leaves of a 2x2 input when
    /// `--verify` tries that size): tract 0.23 panics ("chunk size must be non-zero");
    /// evaluation says so as an error, so that `--verify` can go on to a size the model runs at.
    #[test]
    fn a_tract_panic_is_an_evaluation_error() {
        let mut g = Graph::new();
        let sym = |s: &str| Dim::Sym(s.into());
        let shape = vec![Dim::Fixed(1), Dim::Fixed(1), sym("h"), sym("w")];
        let x = g.add_input("x", TensorType::new(DType::F32, shape));
        let pool = Pool {
            kind: PoolKind::Max,
            layout: Layout::Nchw,
            kernel: vec![3, 3],
            strides: vec![2, 2],
            dilations: vec![1, 1],
            padding: Padding::Explicit(vec![(0, 0), (0, 0)]),
            ceil_mode: true,
            count_include_pad: false,
        };
        let y = g
            .add_node("pool", Op::Pool(pool), vec![x], &["y".into()])
            .unwrap();
        g.outputs = y;
        let empty = Tensor::from_f32(vec![1, 1, 0, 0], &[]);
        let e = run(&g, &[empty]).unwrap_err().to_string();
        assert!(e.contains("evaluation failed"), "{e}");
        let fine = Tensor::from_f32(vec![1, 1, 5, 5], &[1.0; 25]);
        assert_eq!(run(&g, &[fine]).unwrap()[0].shape, vec![1, 1, 2, 2]);
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::ir::ops::{BinaryOp, ConstantOfShape, Tile};
    use crate::ir::{fixed_shape, Op};

    fn peak_rss_mb() -> i64 {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        u.ru_maxrss / 1024
    }

    /// Values whose declared sizes are far past what evaluation may hold are refused by name
    /// before tract allocates them: a ConstantOfShape of constants (which tract folds while
    /// typing) and a Tile.
    #[test]
    fn huge_values_are_refused_before_allocating() {
        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1])));
        let shape = g.add_const(
            "shape",
            Tensor::from_i64s(DType::I64, vec![2], &[1 << 20, 1 << 20]),
        );
        let value = Tensor::from_f64s(DType::F32, vec![], &[1.0]);
        let c = g
            .add_node(
                "fill",
                Op::ConstantOfShape(ConstantOfShape { value }),
                vec![shape],
                &["c".into()],
            )
            .unwrap();
        let y = g
            .add_node(
                "add",
                Op::Binary(BinaryOp::Add),
                vec![c[0], x],
                &["y".into()],
            )
            .unwrap();
        g.outputs = y;
        let inputs = random_inputs(&g, 1, 1);
        let err = run(&g, &inputs).unwrap_err().to_string();
        assert!(err.contains("evaluation refused: 'c'"), "{err}");

        let mut g = Graph::new();
        let x = g.add_input("x", TensorType::new(DType::F32, fixed_shape(&[1])));
        let tile = Tile {
            repeats: vec![1 << 30],
        };
        let y = g
            .add_node("tile", Op::Tile(tile), vec![x], &["y".into()])
            .unwrap();
        g.outputs = y;
        let err = run(&g, &inputs).unwrap_err().to_string();
        assert!(err.contains("evaluation refused: 'y'"), "{err}");
        assert!(peak_rss_mb() < 2048, "peak RSS {} MB", peak_rss_mb());
    }
}
