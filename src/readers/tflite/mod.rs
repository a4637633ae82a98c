//! TFLite reader (`.tflite` flatbuffers, recognised by the `TFL3` identifier at bytes 4..8).
//! The file is memory-mapped and parsed (and bounds-checked) by the flatbuffer verifier of
//! tract's generated schema; constant buffers stay slices of the mapping. Subgraph 0 is the
//! model (or the subgraph of the signature `--signature` names); its inputs and outputs are
//! named from that signature, else `serving_default`, when there is one. Data stays NHWC with TFLite's OHWI / `[1, H, W, C·M]` kernels, as the IR can say.

mod complex;
mod control;
mod import;
mod ops;
mod quant;
mod sparse;
mod tensor;
mod variables;

use super::{ReadOptions, Reader};
use crate::error::{failed, Error, Result};
use crate::ir::mapped::map_file;
use crate::ir::Graph;
use std::io::Read;
use std::path::Path;
use tract_tflite::tflite as tfl;

pub struct TfliteReader;

/// The flatbuffer file identifier of TFLite models.
const IDENTIFIER: &[u8; 4] = b"TFL3";

impl Reader for TfliteReader {
    fn name(&self) -> &'static str {
        "tflite"
    }

    fn probe(&self, path: &Path) -> bool {
        let mut head = [0u8; 8];
        path.is_file()
            && std::fs::File::open(path).is_ok_and(|mut f| f.read_exact(&mut head).is_ok())
            && &head[4..8] == IDENTIFIER
    }

    fn read(&self, path: &Path, opts: &ReadOptions) -> Result<Graph> {
        let file = path.display().to_string();
        let bytes = map_file(path).map_err(failed)?;
        // Weight buffers live inside the flatbuffer: allow files as large as the format does.
        let vopts = flatbuffers::VerifierOptions {
            max_apparent_size: 1 << 31,
            max_tables: 1 << 24,
            ..Default::default()
        };
        let model = tfl::root_as_model_with_opts(&vopts, &bytes)
            .map_err(|e| failed(format!("{file}: not a valid TFLite model ({e})")))?;
        let index = match &opts.signature {
            Some(key) => {
                signature_subgraph(&model, key).map_err(|e| Error::Usage(format!("{file}: {e}")))?
            }
            None => 0,
        };
        let mut imp = import::Importer::new(model, &bytes, index)
            .map_err(|e| failed(format!("{file}: {e}")))?;
        if let Some(key) = &opts.signature {
            imp.use_signature(index, key);
        }
        imp.add_inputs(opts).map_err(|e| match e {
            import::InputError::Usage(m) => Error::Usage(m),
            import::InputError::Invalid(m) => failed(format!("{file}: {m}")),
        })?;
        imp.import_ops()
            .map_err(|e| failed(format!("{file}: {e}")))?;
        if !imp.b.unsupported.is_empty() {
            return Err(Error::Unsupported {
                file,
                items: std::mem::take(&mut imp.b.unsupported),
            });
        }
        let mut g = imp.finish().map_err(|e| failed(format!("{file}: {e}")))?;
        g.remove_dead();
        Ok(g)
    }
}

/// The subgraph signature `key` runs, or why there is none.
fn signature_subgraph(model: &tfl::Model, key: &str) -> std::result::Result<usize, String> {
    let sigs: Vec<tfl::SignatureDef> = model
        .signature_defs()
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    if let Some(s) = sigs.iter().find(|s| s.signature_key() == Some(key)) {
        return Ok(s.subgraph_index() as usize);
    }
    let keys: Vec<&str> = sigs.iter().filter_map(|s| s.signature_key()).collect();
    Err(format!(
        "no signature '{key}' (the model has: {})",
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        }
    ))
}
