//! Passes transform a graph in place. The manager runs a list to a fixed point (with a step
//! cap), verifies the graph after every pass, and records what each pass did.

pub mod affine;
pub mod fuse;
pub mod integer;
pub mod io_layout;
pub mod layout;
pub mod lower;
pub mod nhwc;
pub mod rewrite;
pub mod spatial1d;
pub mod transpose;
pub mod unroll;

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
