//! Where a layer's weights are, in the two Keras storage schemes, as one ordered list per layer
//! (the order of `layer.weights`, which is what the layer handlers index).
//!
//! - Full-model `.h5` (Keras 2 and 3): `model_weights/<layer>/` lists its datasets in the
//!   `weight_names` attribute, paths relative to that group (`dense/kernel:0` in Keras 2,
//!   `dense/kernel` in Keras 3). A nested model keeps all its layers' weights in its own group;
//!   an inner layer's are those whose path names it.
//! - `.keras` (`model.weights.h5`): `layers/<auto name>/vars/0..n`, the group's `vars` carrying
//!   the layer name in its `name` attribute (Keras ≥ 3.?); sub-layers (an RNN's `cell`, the
//!   dense layers of MultiHeadAttention, Bidirectional's two layers) are sub-groups, nested
//!   models keep theirs under `layers/`.

use super::h5::{self, H5};
use crate::ir::Tensor;
use std::collections::HashMap;
use std::sync::Arc;

pub enum Weights {
    /// `.h5`: per layer, its `(weight name, tensor)` list.
    Legacy(HashMap<String, Vec<(String, Tensor)>>),
    /// Inside a nested model of a `.h5`: all its weights; a layer takes those naming it.
    Scoped(Vec<(String, Tensor)>),
    /// `.keras`: the layer groups below a path, indexed by layer name.
    V3 {
        h5: Arc<H5>,
        by_name: HashMap<String, String>,
    },
}

/// Sub-groups of a `.keras` layer group in `layer.weights` order; others follow by name.
const SUBLAYER_ORDER: [&str; 8] = [
    "cell",
    "forward_layer",
    "backward_layer",
    "layer",
    "query_dense",
    "key_dense",
    "value_dense",
    "output_dense",
];

impl Weights {
    /// The weights of a full-model `.h5` (`model_weights` group).
    pub fn legacy(h5: &H5) -> Result<Weights, String> {
        let root = h5.root()?;
        let mw = h5.group_at(&root, "model_weights")?;
        let mut layers = HashMap::new();
        for layer in h5::string_list(&mw, "layer_names")? {
            let g = h5.group_at(&mw, &layer)?;
            let mut list = Vec::new();
            for wn in
                h5::string_list(&g, "weight_names").map_err(|e| format!("layer '{layer}': {e}"))?
            {
                let ds = h5.dataset_at(&g, &wn)?;
                list.push((wn, h5.tensor(&ds)?));
            }
            layers.insert(layer, list);
        }
        Ok(Weights::Legacy(layers))
    }

    /// The weights of a `.keras` archive's `model.weights.h5`.
    pub fn v3(h5: Arc<H5>) -> Result<Weights, String> {
        Weights::v3_at(h5, "layers")
    }

    fn v3_at(h5: Arc<H5>, path: &str) -> Result<Weights, String> {
        let root = h5.root()?;
        let mut by_name = HashMap::new();
        let Ok(g) = h5.group_at(&root, path) else {
            // A model without weighted layers may have no `layers` group at all.
            return Ok(Weights::V3 { h5, by_name });
        };
        for sub in h5::group_names(&g)? {
            let p = format!("{path}/{sub}");
            let vars = h5.group_at(&root, &format!("{p}/vars"));
            let name = match vars {
                Ok(v) => h5::string_attr(&v, "name")?,
                Err(_) => None,
            };
            by_name.insert(name.unwrap_or_else(|| sub.clone()), p);
        }
        Ok(Weights::V3 { h5, by_name })
    }

    /// The weights of layer `name`, in `layer.weights` order.
    pub fn layer(&self, name: &str) -> Result<Vec<Tensor>, String> {
        match self {
            Weights::Legacy(m) => Ok(m
                .get(name)
                .map(|l| l.iter().map(|(_, t)| t.clone()).collect())
                .unwrap_or_default()),
            Weights::Scoped(list) => Ok(list
                .iter()
                .filter(|(n, _)| names_layer(n, name))
                .map(|(_, t)| t.clone())
                .collect()),
            Weights::V3 { h5, by_name } => match by_name.get(name) {
                Some(p) => {
                    let mut out = Vec::new();
                    collect_v3(h5, p, &mut out, 0)?;
                    Ok(out)
                }
                None => Ok(vec![]),
            },
        }
    }

    /// The weights of the layers of nested model `name`.
    pub fn nested(&self, name: &str) -> Result<Weights, String> {
        match self {
            Weights::Legacy(m) => Ok(Weights::Scoped(m.get(name).cloned().unwrap_or_default())),
            Weights::Scoped(list) => Ok(Weights::Scoped(
                list.iter()
                    .filter(|(n, _)| names_layer(n, name))
                    .cloned()
                    .collect(),
            )),
            Weights::V3 { h5, by_name } => match by_name.get(name) {
                Some(p) => Weights::v3_at(h5.clone(), &format!("{p}/layers")),
                None => Ok(Weights::V3 {
                    h5: h5.clone(),
                    by_name: HashMap::new(),
                }),
            },
        }
    }
}

/// Whether weight path `path` (`outer/inner/kernel:0`) belongs to layer `layer`.
fn names_layer(path: &str, layer: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts[..parts.len().saturating_sub(1)].contains(&layer)
}

fn collect_v3(h5: &H5, path: &str, out: &mut Vec<Tensor>, depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err(format!("'{path}': layers nested too deeply"));
    }
    let root = h5.root()?;
    let g = h5.group_at(&root, path)?;
    if let Ok(vars) = h5.group_at(&g, "vars") {
        let (_, mut names): (Vec<String>, Vec<String>) =
            vars.member_names().map_err(|e| e.to_string())?;
        names.sort_by_key(|n| n.parse::<usize>().unwrap_or(usize::MAX));
        for n in names {
            let ds = h5.dataset_at(&vars, &n)?;
            out.push(h5.tensor(&ds)?);
        }
    }
    let mut subs: Vec<String> = h5::group_names(&g)?
        .into_iter()
        .filter(|s| s != "vars" && s != "layers")
        .collect();
    subs.sort_by_key(|s| {
        (
            SUBLAYER_ORDER
                .iter()
                .position(|k| k == s)
                .unwrap_or(usize::MAX),
            s.clone(),
        )
    });
    for s in subs {
        collect_v3(h5, &format!("{path}/{s}"), out, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::names_layer;

    #[test]
    fn weight_paths_name_their_layers() {
        assert!(names_layer("seqm/sd1/kernel", "sd1"));
        assert!(names_layer("idense/kernel:0", "idense"));
        assert!(!names_layer("idense/kernel:0", "kernel:0"));
        assert!(!names_layer("dense_1/kernel", "dense"));
    }
}
