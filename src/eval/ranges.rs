//! Calibration: the `(min, max)` of chosen values over sample inputs, measured by running the
//! graph with those values exposed as extra outputs. The quantization pass decides which values
//! it needs ([`crate::passes::quantize::activations::Plan`]) and takes the measurements as
//! input; evaluating is the pipeline's business, not a pass's.

use crate::error::{failed, Result};
use crate::ir::{Graph, Tensor, ValueId};
use crate::passes::quantize::activations::Measured;
use std::collections::{HashMap, HashSet};

/// min/max of every value in `values` over the calibration batches, and the values whose
/// range could not be measured (tract fails to evaluate some graphs with that intermediate
/// value exposed: those stay float).
pub fn measure_ranges(g: &Graph, values: &[ValueId], batches: &[Vec<Tensor>]) -> Result<Measured> {
    let inputs: HashMap<ValueId, usize> =
        g.inputs.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let outputs: HashSet<ValueId> = g.outputs.iter().copied().collect();
    let mut ranges: HashMap<ValueId, (f32, f32)> = HashMap::new();
    let widen = |ranges: &mut HashMap<ValueId, (f32, f32)>, v: ValueId, t: &Tensor| {
        let e = ranges
            .entry(v)
            .or_insert((f32::INFINITY, f32::NEG_INFINITY));
        for x in t.to_f64s() {
            if x.is_finite() {
                e.0 = e.0.min(x as f32);
                e.1 = e.1.max(x as f32);
            }
        }
    };
    for &v in values {
        if let Some(&i) = inputs.get(&v) {
            for b in batches {
                if let Some(t) = b.get(i) {
                    widen(&mut ranges, v, t);
                }
            }
        }
    }
    let extra: Vec<ValueId> = values
        .iter()
        .copied()
        .filter(|v| !inputs.contains_key(v) && !outputs.contains(v))
        .collect();
    let wanted_outputs: Vec<(usize, ValueId)> = g
        .outputs
        .iter()
        .enumerate()
        .filter(|(_, v)| values.contains(v))
        .map(|(i, &v)| (i, v))
        .collect();
    let n_out = g.outputs.len();
    // All exposed at once; a group tract cannot evaluate is halved until the culprits are found.
    let mut groups: Vec<Vec<ValueId>> = vec![extra];
    let mut unmeasured = Vec::new();
    let mut base_checked = false;
    while let Some(group) = groups.pop() {
        let mut got: HashMap<ValueId, (f32, f32)> = HashMap::new();
        let r = super::run_batches(g, &group, batches, |_, vals| {
            for &(i, v) in &wanted_outputs {
                if let Some(t) = vals.get(i) {
                    widen(&mut got, v, t);
                }
            }
            for (k, &v) in group.iter().enumerate() {
                if let Some(t) = vals.get(n_out + k) {
                    widen(&mut got, v, t);
                }
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                for (v, (lo, hi)) in got {
                    let e = ranges.entry(v).or_insert((lo, hi));
                    *e = (e.0.min(lo), e.1.max(hi));
                }
            }
            Err(e) if group.is_empty() => return Err(failed(format!("calibration: {e}"))),
            Err(_) if group.len() == 1 => unmeasured.extend(group),
            Err(_) => {
                let (a, b) = group.split_at(group.len() / 2);
                groups.push(b.to_vec());
                groups.push(a.to_vec());
                if !base_checked {
                    // First make sure the graph itself evaluates (next to run).
                    base_checked = true;
                    groups.push(vec![]);
                }
            }
        }
    }
    let ranges = ranges
        .into_iter()
        .map(|(v, (lo, hi))| {
            if lo > hi {
                (v, (0.0, 0.0))
            } else {
                (v, (lo, hi))
            }
        })
        .collect();
    Ok(Measured {
        ranges,
        unmeasured,
        batches: batches.len(),
    })
}
