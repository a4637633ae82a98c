//! TF.js graph model (`"format": "graph-model"`): the GraphDef `writers::tf_graph` builds,
//! written as `model.json` that `tf.loadGraphModel` runs, constants in the weight shards.

use super::{write_folder, FolderOptions};
use crate::error::{Error, Result, Unsupported};
use crate::ir::Graph;
use crate::writers::tf_graph;
use crate::writers::{WriteReport, Writer};
use serde_json::{json, Map};
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct GraphWriter {
    pub folder: FolderOptions,
    /// `generatedBy` in model.json: what made the source model (e.g. `onnx`, `keras 3.15`).
    pub generated_by: Option<String>,
}

impl Writer for GraphWriter {
    fn name(&self) -> &'static str {
        "tfjs"
    }

    fn legalize(&self, g: &mut Graph) -> Result<()> {
        tf_graph::legalize(g, "TF.js")?;
        // TF.js graph models run Conv3D but have no 3-D transposed convolution.
        crate::passes::conv_transpose3d::lower_conv_transpose_3d(g)
            .map_err(|e| crate::error::failed(format!("TF.js legalization: {e}")))?;
        Ok(())
    }

    fn check(&self, g: &Graph) -> Vec<Unsupported> {
        tf_graph::check(g, tf_graph::Dialect::Tfjs)
    }

    fn write(&self, g: &Graph, out: &Path) -> Result<WriteReport> {
        let built =
            tf_graph::build(g, tf_graph::Dialect::Tfjs).map_err(|items| Error::Unsupported {
                file: out.display().to_string(),
                items,
            })?;
        let mut model = Map::new();
        model.insert("format".into(), json!("graph-model"));
        if let Some(by) = &self.generated_by {
            model.insert("generatedBy".into(), json!(by));
        }
        model.insert("modelTopology".into(), built.topology);
        model.insert("signature".into(), built.signature);
        // tfjs-converter's `execute` refuses control flow; the folder says which call runs it
        // (`model.metadata` once loaded).
        if g.nodes.iter().any(|n| !n.op.bodies().is_empty()) {
            model.insert(
                "userDefinedMetadata".into(),
                json!({ "mdeploy": { "run": "executeAsync",
                    "why": "the graph holds control flow (StatelessIf/StatelessWhile), which \
                            GraphModel.execute refuses" } }),
            );
        }
        let mut report = write_folder(out, model, &built.weights, &self.folder)?;
        report.nodes = built.nodes;
        Ok(report)
    }
}
