//! Readers turn a model file or folder into a typed [`Graph`]. Each recognises its format from
//! content (never from the extension alone).

pub mod builder;
pub mod fold;
pub mod keras;
pub mod onnx;
pub mod saved_model;

use crate::error::{failed, Error, Result};
use crate::ir::{Graph, Shape};
use bytes::Bytes;
use std::path::Path;

/// Options every reader understands.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Overrides of input shapes by input name.
    pub input_shapes: Vec<(String, Shape)>,
    /// The signature to read from a SavedModel (default `serving_default`).
    pub signature: Option<String>,
}

/// Parses `name:1x224x224x3` (a dimension may be a symbol such as `batch`).
pub fn parse_input_shape(s: &str) -> std::result::Result<(String, Shape), String> {
    let (name, dims) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}': expected NAME:DIMxDIM…"))?;
    let shape = dims
        .split(['x', ','])
        .filter(|d| !d.is_empty())
        .map(|d| match d.parse::<u64>() {
            Ok(n) => crate::ir::Dim::Fixed(n),
            Err(_) => crate::ir::Dim::Sym(d.to_string()),
        })
        .collect();
    Ok((name.to_string(), shape))
}

pub trait Reader {
    /// Short format name (`onnx`, `keras`, `saved_model`).
    fn name(&self) -> &'static str;
    /// Whether `path` holds this format, judged from its content.
    fn probe(&self, path: &Path) -> bool;
    fn read(&self, path: &Path, opts: &ReadOptions) -> Result<Graph>;
}

/// Every reader, in probing order.
pub fn all() -> Vec<Box<dyn Reader>> {
    vec![
        Box::new(onnx::OnnxReader),
        Box::new(saved_model::SavedModelReader),
        Box::new(keras::KerasReader),
    ]
}

/// Finds the reader for `path` or explains why none fits.
pub fn detect(path: &Path) -> Result<Box<dyn Reader>> {
    if !path.exists() {
        return Err(failed(format!(
            "{}: no such file or folder",
            path.display()
        )));
    }
    let readers = all();
    let names: Vec<&str> = readers.iter().map(|r| r.name()).collect();
    if let Some(r) = readers.into_iter().find(|r| r.probe(path)) {
        return Ok(r);
    }
    let what = if path.is_dir() {
        "folder holds no model (a SavedModel folder needs saved_model.pb)"
    } else {
        "file is not a model"
    };
    Err(failed(format!(
        "{}: this {what} in a format mdeploy reads (formats: {})",
        path.display(),
        names.join(", ")
    )))
}

/// Reads a model of any supported format, verifying the graph it makes.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Graph> {
    let reader = detect(path)?;
    let graph = reader.read(path, opts)?;
    graph.verify().map_err(|e| {
        Error::Failed(format!(
            "{}: reader produced an invalid graph: {e}",
            path.display()
        ))
    })?;
    Ok(graph)
}

/// Maps a file into memory; the bytes stay shared for as long as any tensor refers to them.
pub fn map_file(path: &Path) -> Result<Bytes, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only; mdeploy never writes to its inputs. Another process
    // truncating the file while we run is outside what any reader can defend against.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Bytes::from_owner(MappedFile::new(map)))
}

/// The address ranges of the input files mapped now, for [`release_pages`].
static MAPPED: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());

/// A mapped input file, listed in [`MAPPED`] for as long as it is mapped.
struct MappedFile(memmap2::Mmap);

impl MappedFile {
    fn new(map: memmap2::Mmap) -> MappedFile {
        if let Ok(mut m) = MAPPED.lock() {
            m.push((map.as_ptr() as usize, map.len()));
        }
        MappedFile(map)
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        let range = (self.0.as_ptr() as usize, self.0.len());
        if let Ok(mut m) = MAPPED.lock() {
            m.retain(|&r| r != range);
        }
    }
}

/// Hands back to the system the resident pages of `data` when it lies in a mapped input file
/// (other memory is left alone). The data stays valid: the file's pages are read again, from
/// the page cache, if anything touches them later. Evaluation calls this for weights tract has
/// copied, so that a model's weights are not resident twice while tract runs it.
pub fn release_pages(data: &[u8]) {
    #[cfg(unix)]
    {
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let Ok(maps) = MAPPED.lock() else {
            return;
        };
        if !maps.iter().any(|&(s, l)| s <= start && end <= s + l) {
            return;
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        let (first, last) = (start.div_ceil(page) * page, end / page * page);
        if last > first {
            // SAFETY: [first, last) lies inside a live, read-only, file-backed shared mapping
            // (listed in MAPPED, which its owner leaves only when unmapped; the lock is held, and
            // the caller's borrow keeps the owner alive). MADV_DONTNEED on such a mapping only
            // drops page-table entries: later reads fault the same file pages back in.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = data;
}
