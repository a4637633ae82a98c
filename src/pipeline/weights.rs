//! The weight stages of `optimize`: pruning and clustering with their gzip figures, and the
//! per-op node counts before and after the passes.

use super::options::Options;
use super::report::{OpCount, WeightsGzip};
use super::Observer;
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::passes::cluster::{self, ClusterReport};
use crate::passes::prune::{self, PruneReport};
use std::collections::BTreeMap;

/// What the weight stages did.
pub(super) struct Transformed {
    pub pruned: Option<PruneReport>,
    pub clustered: Option<ClusterReport>,
    pub gzip: Option<WeightsGzip>,
}

impl Transformed {
    /// Whether the graph's weights differ from the source's.
    pub fn changed(&self) -> bool {
        self.pruned.is_some() || self.clustered.is_some()
    }
}

/// Pruning, then clustering, as asked; prints what they did.
pub(super) fn transform(opts: &Options, g: &mut Graph, obs: &dyn Observer) -> Result<Transformed> {
    let w = &opts.weights;
    if w.prune.is_none() && w.cluster.is_none() {
        return Ok(Transformed {
            pruned: None,
            clustered: None,
            gzip: None,
        });
    }
    let before = constants_gzip(g);
    let pruned = match w.prune {
        Some((sparsity, scope)) => {
            obs.step("pruning");
            let r = prune::prune(g, sparsity, scope).map_err(Error::Usage)?;
            obs.line(&format!(
                "pruned {} kernels ({} elements) to {:.2}% zeros (target {:.2}%, {:?} scope); {} small kernels left alone",
                r.tensors.len(),
                r.elements,
                r.achieved * 100.0,
                sparsity * 100.0,
                r.scope,
                r.skipped_small
            ));
            Some(r)
        }
        None => None,
    };
    let clustered = match &w.cluster {
        Some(c) => {
            obs.step("clustering");
            let c = cluster::ClusterOptions {
                preserve_zeros: c.preserve_zeros || pruned.is_some(),
                ..c.clone()
            };
            let r = cluster::cluster(g, &c).map_err(Error::Usage)?;
            let most = r.tensors.iter().map(|t| t.distinct).max().unwrap_or(0);
            obs.line(&format!(
                "clustered {} kernels into at most {} values (most distinct in one kernel: {most}); {} small kernels left alone",
                r.tensors.len(),
                c.clusters,
                r.skipped_small
            ));
            Some(r)
        }
        None => None,
    };
    g.verify()
        .map_err(|e| Error::Failed(format!("weight transformation broke the graph: {e}")))?;
    let gzip = WeightsGzip {
        before,
        after: constants_gzip(g),
    };
    obs.line(&format!(
        "weights gzip-compressed: {} → {} bytes",
        gzip.before, gzip.after
    ));
    Ok(Transformed {
        pruned,
        clustered,
        gzip: Some(gzip),
    })
}

/// gzip size of every constant's bytes (prune::gzip_len: parallel members).
fn constants_gzip(g: &Graph) -> u64 {
    let parts: Vec<&[u8]> = g
        .values
        .iter()
        .filter_map(|v| v.constant.as_ref().map(|t| &t.data[..]))
        .collect();
    prune::gzip_len(&parts)
}

/// Per-op counts of two graphs, every op of either, sorted by name.
pub fn op_table(before: &Graph, after: &Graph) -> Vec<OpCount> {
    let (b, a) = (
        crate::passes::op_counts(before),
        crate::passes::op_counts(after),
    );
    let mut ops: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (op, &n) in &b {
        ops.entry(op).or_default().0 = n;
    }
    for (op, &n) in &a {
        ops.entry(op).or_default().1 = n;
    }
    ops.into_iter()
        .map(|(op, (before, after))| OpCount {
            op: op.to_string(),
            before,
            after,
        })
        .collect()
}

/// The op table as aligned text lines, with totals.
pub fn op_lines(ops: &[OpCount], before: usize, after: usize) -> Vec<String> {
    let w = ops.iter().map(|o| o.op.len()).max().unwrap_or(2).max(5);
    let mut v = vec![format!("{:<w$} {:>7} {:>7}", "op", "before", "after")];
    for o in ops {
        v.push(format!("{:<w$} {:>7} {:>7}", o.op, o.before, o.after));
    }
    v.push(format!("{:<w$} {:>7} {:>7}", "total", before, after));
    v
}
