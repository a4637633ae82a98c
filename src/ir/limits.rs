//! Resource limits every reader shares, each raised by an environment variable (the CLI's
//! `--max-nodes` / `--max-inflate-mb` flags set them): what a model may make mdeploy allocate
//! beyond what its file's size justifies. docs/robustness.md lists them all.

/// Nodes a model may expand to, functions inlined and subgraph bodies included, unless
/// `MDEPLOY_MAX_NODES` says otherwise. Real models stay far below (the largest fixtures have
/// thousands); a few hundred bytes of nested function calls can ask for billions, and each IR
/// node costs about 1.5 KB of memory through the passes.
pub const MAX_NODES: usize = 1_000_000;

/// Bytes one compressed entry (a `.keras` archive member, an HDF5 dataset that needs decoding)
/// may inflate to unless `MDEPLOY_MAX_INFLATE_MB` says otherwise. Keras stores its archives
/// uncompressed (read in place, never inflated), so this only meets re-compressed archives and
/// compressed HDF5 datasets, which a decompression bomb is.
pub const MAX_INFLATE_BYTES: u64 = 1 << 30;

fn env_number(var: &str) -> Option<u64> {
    std::env::var(var).ok()?.trim().parse().ok()
}

/// [`MAX_NODES`] or `MDEPLOY_MAX_NODES`.
pub fn max_nodes() -> usize {
    env_number("MDEPLOY_MAX_NODES").map_or(MAX_NODES, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// [`MAX_INFLATE_BYTES`] or `MDEPLOY_MAX_INFLATE_MB` mebibytes.
pub fn max_inflate_bytes() -> u64 {
    env_number("MDEPLOY_MAX_INFLATE_MB").map_or(MAX_INFLATE_BYTES, |mb| mb.saturating_mul(1 << 20))
}

/// Refuses `count` new values or steps from one node (an unpack into that many outputs, an
/// RNN unrolled over that many steps) past [`max_nodes`]: the count comes from a declared
/// shape, which a few bytes can make enormous.
pub fn check_fanout(count: u64, what: &str) -> Result<(), String> {
    match count > max_nodes() as u64 {
        true => Err(too_many_nodes(what)),
        false => Ok(()),
    }
}

/// The refusal of a model past [`max_nodes`]: `what` says where the count stopped.
pub fn too_many_nodes(what: &str) -> String {
    format!(
        "{what}: the model expands to more than {} nodes (functions inlined, subgraphs \
         included); --max-nodes or MDEPLOY_MAX_NODES raises the limit",
        max_nodes()
    )
}
