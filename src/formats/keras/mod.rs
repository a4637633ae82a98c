//! Keras files, for the Keras reader (which builds the IR from them) and the TF.js layers
//! writer (which rewrites the Keras topology itself): full-model HDF5 files from Keras 2 /
//! tf_keras and Keras 3 (`model.save("m.h5")`) and Keras 3 `.keras` zip archives
//! (`config.json`, `metadata.json`, `model.weights.h5`), recognised from content (the HDF5
//! signature, or a zip holding `config.json`). HDF5 is read by the pure-Rust `hdf5-reader`;
//! weights stay slices of the memory-mapped file (a `.keras` archive stores its weights
//! uncompressed, so they are sliced too).
//!
//! - `config.rs`: the model config in both dialects, and how calls and nested models' node
//!   indices are read from it.
//! - `weights.rs`: each layer's weights in `layer.weights` order, in both storage schemes.
//! - `h5.rs`: HDF5 attributes and datasets as IR tensors.

pub mod config;
mod h5;
pub mod weights;

use crate::error::{failed, Result};
use crate::ir::mapped::map_file;
use bytes::Bytes;
use config::LayerSpec;
use std::path::Path;
use std::sync::Arc;
use weights::Weights;

const HDF5_SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";
const ZIP_SIGNATURE: &[u8] = b"PK\x03\x04";

/// Whether `path` is a Keras file, judged from its content.
pub fn probe(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    let Ok(bytes) = map_file(path) else {
        return false;
    };
    if bytes.starts_with(HDF5_SIGNATURE) {
        return true;
    }
    bytes.starts_with(ZIP_SIGNATURE)
        && zip::ZipArchive::new(std::io::Cursor::new(&bytes[..]))
            .is_ok_and(|z| z.file_names().any(|n| n.is_ok_and(|n| n == "config.json")))
}

/// A Keras file as its model config (either dialect, as written) and its weights: what the
/// reader builds a graph from, and what writers that keep the Keras model structure (the
/// TF.js layers format) translate.
pub struct KerasSource {
    /// The top-level `{"class_name": "Functional"|"Sequential"|..., "config": {...}}`.
    pub model: LayerSpec,
    /// Each layer's weights in `layer.weights` order, slices of the mapped file.
    pub weights: Weights,
    /// Keras 3 (vs Keras 2 / tf_keras): the dialect the config is written in.
    pub keras3: bool,
}

/// Opens a Keras `.h5` or `.keras` file: its model config and weights.
pub fn read_source(path: &Path) -> Result<KerasSource> {
    let file = path.display().to_string();
    let bytes = map_file(path).map_err(failed)?;
    let in_file = |e: String| failed(format!("{file}: {e}"));
    let source = if bytes.starts_with(HDF5_SIGNATURE) {
        open_h5(bytes).map_err(in_file)?
    } else if bytes.starts_with(ZIP_SIGNATURE) {
        open_archive(bytes).map_err(in_file)?
    } else {
        return Err(failed(format!("{file}: not a Keras .h5 or .keras file")));
    };
    let spec: LayerSpec = serde_json::from_str(&source.config)
        .map_err(|e| failed(format!("{file}: the model config is not valid JSON ({e})")))?;
    if !spec.is_model() {
        return Err(failed(format!(
            "{file}: the file holds a {} layer, not a model",
            spec.class_name
        )));
    }
    Ok(KerasSource {
        model: spec,
        weights: source.weights,
        keras3: source.keras3,
    })
}

/// What a Keras file holds: the model config, its weights, and the Keras major version.
struct Source {
    config: String,
    weights: Weights,
    keras3: bool,
}

fn open_h5(bytes: Bytes) -> Result<Source, String> {
    let h5 = h5::H5::open(bytes)?;
    let root = h5.root()?;
    let config = h5::string_attr(&root, "model_config")?.ok_or(
        "an HDF5 file without a model config (weights only?): save the whole model with model.save()",
    )?;
    let version = h5::string_attr(&root, "keras_version")?.unwrap_or_default();
    let weights = Weights::legacy(&h5)?;
    Ok(Source {
        config,
        weights,
        keras3: version.starts_with('3'),
    })
}

/// Refuses archive entry names that could leave the archive's folder.
fn safe_entry_name(name: &str) -> bool {
    let bad_start = name.starts_with('/') || name.starts_with('\\') || name.get(1..2) == Some(":");
    !bad_start && !name.split(['/', '\\']).any(|c| c == "..")
}

/// An archive entry's bytes, decompressed: at most what its header declares and at most
/// [`max_inflate_bytes`](crate::ir::limits::max_inflate_bytes), so that a decompression bomb
/// (or a header lying about the size) is refused before memory runs out. `reserve_cap` bounds
/// the up-front allocation (0: none) so that a lying header reserves nothing.
fn inflate(
    f: &mut zip::read::ZipFile<'_, impl std::io::Read>,
    name: &str,
    reserve_cap: usize,
) -> Result<Vec<u8>, String> {
    let declared = f.size();
    let limit = crate::ir::limits::max_inflate_bytes();
    if declared > limit {
        return Err(format!(
            "archive entry '{name}' declares {declared} bytes uncompressed ({} compressed), \
             past the {} MiB an entry may inflate to (--max-inflate-mb or \
             MDEPLOY_MAX_INFLATE_MB raises it)",
            f.compressed_size(),
            limit >> 20
        ));
    }
    let mut v = Vec::with_capacity((declared as usize).min(reserve_cap));
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut *f, declared + 1), &mut v)
        .map_err(|e| format!("archive entry '{name}': {e}"))?;
    if v.len() as u64 > declared {
        return Err(format!(
            "archive entry '{name}' inflates past the {declared} bytes its header declares"
        ));
    }
    Ok(v)
}

fn open_archive(bytes: Bytes) -> Result<Source, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone()))
        .map_err(|e| format!("not a readable .keras archive ({e})"))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.to_string()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("not a readable .keras archive ({e})"))?;
    if let Some(bad) = names.iter().find(|n| !safe_entry_name(n)) {
        return Err(format!(
            "archive entry '{bad}' has an absolute path or '..'; refusing the archive"
        ));
    }
    let text =
        |zip: &mut zip::ZipArchive<std::io::Cursor<Bytes>>, name: &str| -> Result<String, String> {
            let mut f = zip
                .by_name(name)
                .map_err(|e| format!("archive entry '{name}': {e}"))?;
            String::from_utf8(inflate(&mut f, name, 0)?)
                .map_err(|e| format!("archive entry '{name}': {e}"))
        };
    let config = text(&mut zip, "config.json")?;
    let keras3 = match text(&mut zip, "metadata.json") {
        Ok(m) => serde_json::from_str::<serde_json::Value>(&m)
            .ok()
            .and_then(|v| v.get("keras_version")?.as_str().map(|s| s.starts_with('3')))
            .unwrap_or(true),
        Err(_) => true,
    };
    let weights_bytes = {
        let mut f = zip
            .by_name("model.weights.h5")
            .map_err(|e| format!("archive entry 'model.weights.h5': {e}"))?;
        let size = f.size() as usize;
        match (f.compression(), f.data_start()) {
            (zip::CompressionMethod::Stored, Some(start))
                if (start as usize)
                    .checked_add(size)
                    .is_some_and(|e| e <= bytes.len()) =>
            {
                bytes.slice(start as usize..start as usize + size)
            }
            _ => Bytes::from(inflate(&mut f, "model.weights.h5", bytes.len())?),
        }
    };
    let h5 = Arc::new(h5::H5::open(weights_bytes).map_err(|e| format!("model.weights.h5: {e}"))?);
    Ok(Source {
        config,
        weights: Weights::v3(h5)?,
        keras3,
    })
}

#[cfg(test)]
mod tests {
    use super::{safe_entry_name, KerasSource};

    /// A read source is shared (`Arc`) with writers, possibly on other threads.
    #[test]
    fn sources_can_cross_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<KerasSource>();
    }

    #[test]
    fn archive_names_stay_inside() {
        assert!(safe_entry_name("config.json"));
        assert!(safe_entry_name("assets/x.txt"));
        assert!(!safe_entry_name("/etc/passwd"));
        assert!(!safe_entry_name("../x"));
        assert!(!safe_entry_name("a/../../x"));
        assert!(!safe_entry_name("C:\\x"));
    }
}
