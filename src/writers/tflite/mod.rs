//! TFLite writer: flatbuffer schema version 3 (`TFL3`), builtin operators only (never Flex or
//! custom ops). `legalize` rewrites the graph into what TFLite's builtins express (NHWC, OHWI
//! kernels, folded batch norms, lowered ops); `check` maps every node and lists those that
//! cannot be; `write` builds the file (serialize.rs) and writes it atomically.

mod control;
mod dims;
mod indexing;
mod legalize;
pub mod ops;
mod options;
pub mod plan;
pub mod quant;
pub mod serialize;
pub mod versions;

use super::{AtomicFile, WriteReport, Writer};
use crate::error::{Error, Result, Unsupported};
use crate::ir::Graph;
use std::path::Path;

pub use legalize::TFLITE_KERNELS;
pub use serialize::SIGNATURE_KEY;

#[derive(Clone, Copy, Debug, Default)]
pub struct TfliteWriter {
    /// Make 4-D channels-first inputs and outputs NHWC (dropping the boundary transposes).
    pub nhwc_io: bool,
}

impl TfliteWriter {
    /// The model file's bytes for a legalized graph.
    pub fn to_bytes(&self, g: &Graph) -> Result<Vec<u8>> {
        let plan = plan::build(g).map_err(|items| Error::Unsupported {
            file: "graph".into(),
            items,
        })?;
        serialize::build(g, &plan).map_err(Error::Failed)
    }
}

impl Writer for TfliteWriter {
    fn name(&self) -> &'static str {
        "tflite"
    }

    fn legalize(&self, g: &mut Graph) -> Result<()> {
        legalize::legalize(g, self.nhwc_io)
    }

    fn check(&self, g: &Graph) -> Vec<Unsupported> {
        plan::build(g).err().unwrap_or_default()
    }

    fn write(&self, g: &Graph, out: &Path) -> Result<WriteReport> {
        let plan = plan::build(g).map_err(|items| Error::Unsupported {
            file: out.display().to_string(),
            items,
        })?;
        let built = serialize::build_file(g, &plan).map_err(Error::Failed)?;
        let mut file = AtomicFile::create(out)?;
        built.write_to(file.writer()).map_err(super::io_err(out))?;
        file.commit()?;
        Ok(WriteReport {
            files: vec![out.to_path_buf()],
            bytes: built.len() as u64,
            nodes: plan.ops.len(),
        })
    }
}
