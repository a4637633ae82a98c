//! Passes transform a graph in place. The manager runs a list to a fixed point (with a step
//! cap), verifies the graph after every pass, and records what each pass did.

pub mod cleanup;
pub mod cluster;
pub mod conv_fold;
pub mod conv_transpose3d;
pub mod decompose;
pub mod dequantize;
pub mod einsum;
pub mod fuse;
pub mod gather_from_end;
pub mod integer;
pub mod io_layout;
pub mod layout;
pub mod loop_scan;
pub mod lower;
pub mod nhwc;
pub mod prune;
pub mod quantize;
pub mod resize_gather;
pub mod resize_sizes;
pub mod rewrite;
pub mod rnn;
pub mod rnn_loop;
pub mod spatial1d;
pub mod transpose;

use crate::error::{Error, Result};
use crate::ir::Graph;
use std::time::Instant;

/// What a pass needs besides the graph.
#[derive(Default)]
pub struct PassContext {
    pub stats: Vec<PassStats>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PassStats {
    pub pass: &'static str,
    pub changed: bool,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub millis: f64,
}

pub trait Pass {
    fn name(&self) -> &'static str;
    /// Returns whether the graph changed (reported by the pass, never guessed from counts).
    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool>;
}

/// Removes nodes whose results reach no output, and unused values.
pub struct DeadCode;

impl Pass for DeadCode {
    fn name(&self) -> &'static str {
        "dead-code"
    }
    fn run(&self, g: &mut Graph, _ctx: &mut PassContext) -> Result<bool> {
        Ok(g.remove_dead())
    }
}

/// Runs `passes` in order, repeatedly, until none changes the graph or `max_rounds` is hit.
pub fn run_to_fixed_point(
    g: &mut Graph,
    passes: &[&dyn Pass],
    ctx: &mut PassContext,
    max_rounds: usize,
) -> Result<()> {
    for _ in 0..max_rounds {
        let mut any = false;
        for p in passes {
            let before = g.nodes.len();
            let t = Instant::now();
            let changed = p.run(g, ctx)?;
            g.verify()
                .map_err(|e| Error::Failed(format!("pass '{}' broke the graph: {e}", p.name())))?;
            ctx.stats.push(PassStats {
                pass: p.name(),
                changed,
                nodes_before: before,
                nodes_after: g.nodes.len(),
                millis: t.elapsed().as_secs_f64() * 1e3,
            });
            any |= changed;
        }
        if !any {
            return Ok(());
        }
    }
    Ok(())
}

fn pass_err(pass: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Failed(format!("pass '{pass}': {e}"))
}

/// Ops whose inputs are all constants become constants (cleanup.rs).
pub struct FoldConstants;
/// Nodes that pass their input through unchanged are removed (cleanup.rs).
pub struct RemoveIdentities;
/// Batch norms folded into the convolution or dense layer before them (fuse.rs).
pub struct FoldBatchNorms;
/// `conv(x) + per-channel constant` becomes the convolution's bias (cleanup.rs).
pub struct FuseConvBias;
/// Constant Pad ops folded into the padding of the convolution or pool after them (cleanup.rs).
pub struct FusePads;
/// Transposes sunk through elementwise ops, composed and cancelled (transpose.rs).
pub struct CleanTransposes;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold-constants"
    }
    fn run(&self, g: &mut Graph, _ctx: &mut PassContext) -> Result<bool> {
        let made_static = cleanup::static_operands(g).map_err(pass_err(self.name()))?;
        Ok(cleanup::fold_constants(g) | made_static)
    }
}

impl Pass for RemoveIdentities {
    fn name(&self) -> &'static str {
        "remove-identities"
    }
    fn run(&self, g: &mut Graph, _ctx: &mut PassContext) -> Result<bool> {
        Ok(cleanup::remove_identities(g))
    }
}

impl Pass for FoldBatchNorms {
    fn name(&self) -> &'static str {
        "fold-batch-norms"
    }
    fn run(&self, g: &mut Graph, _ctx: &mut PassContext) -> Result<bool> {
        Ok(fuse::fold_batch_norms(g))
    }
}

impl Pass for FuseConvBias {
    fn name(&self) -> &'static str {
        "fuse-conv-bias"
    }
    fn run(&self, g: &mut Graph, _ctx: &mut PassContext) -> Result<bool> {
        Ok(cleanup::fuse_conv_bias(g))
    }
}

impl Pass for FusePads {
    fn name(&self) -> &'static str {
        "fuse-pads"
    }
    fn run(&self, g: &mut Graph, _ctx: &mut PassContext) -> Result<bool> {
        Ok(cleanup::fuse_pads(g))
    }
}

impl Pass for CleanTransposes {
    fn name(&self) -> &'static str {
        "clean-transposes"
    }
    fn run(&self, g: &mut Graph, _ctx: &mut PassContext) -> Result<bool> {
        transpose::clean_transposes(g).map_err(pass_err(self.name()))
    }
}

/// The clean-up and fusion passes, in the order `mdeploy optimize` runs them to a fixed point.
/// (Activation fusion is the writers' business: the IR has no fused activations; the TFLite
/// writer fuses them into the builtin options.)
pub const CLEANUP: &[&dyn Pass] = &[
    &FoldConstants,
    &RemoveIdentities,
    &FoldBatchNorms,
    &FuseConvBias,
    &FusePads,
    &CleanTransposes,
    &DeadCode,
];

/// Runs [`CLEANUP`] to a fixed point (at most 8 rounds), then on every subgraph (If branches,
/// Loop bodies: their inputs and outputs stay as they are, so the node around them still fits).
pub fn cleanup(g: &mut Graph, ctx: &mut PassContext) -> Result<()> {
    run_to_fixed_point(g, CLEANUP, ctx, 8)?;
    for_each_body(g, &mut |body| cleanup(body, &mut PassContext::default()))
}

/// Calls `f` on every subgraph of `g`'s nodes (not recursively: `f` recurses if it wants),
/// copying a body shared with another graph before changing it.
pub fn for_each_body(g: &mut Graph, f: &mut dyn FnMut(&mut Graph) -> Result<()>) -> Result<()> {
    for n in &mut g.nodes {
        for body in n.op.bodies_mut() {
            f(body)?;
        }
    }
    Ok(())
}

/// How many nodes of each op a graph has (op names as [`crate::ir::Op::name`]), sorted by name.
pub fn op_counts(g: &Graph) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for n in &g.nodes {
        *m.entry(n.op.name()).or_insert(0) += 1;
    }
    m
}
