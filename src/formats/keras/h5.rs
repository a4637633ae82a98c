//! HDF5 access for Keras files through the pure-Rust `hdf5-reader`: string attributes (with
//! Keras's quirks) and datasets as IR tensors. A contiguous, unfiltered dataset becomes a slice
//! of the memory-mapped file (no copy); compact, chunked or filtered ones are decoded once.

use crate::ir::{DType, Tensor};
use bytes::Bytes;
use hdf5_reader::group::Group;
use hdf5_reader::messages::layout::DataLayout;
use hdf5_reader::messages::HdfMessage;
use hdf5_reader::{Attribute, ByteOrder, Dataset, Datatype, Hdf5File};

/// How many times its stored size a dataset's data may decode to: deflate, the one expanding
/// filter Keras files use, expands at most 1032-fold.
const MAX_EXPANSION: usize = 1032;

/// An open HDF5 file and the bytes it was opened from (the mapping, or a slice of it).
pub struct H5 {
    pub file: Hdf5File,
    bytes: Bytes,
    base: u64,
}

fn h5err(e: hdf5_reader::error::Error) -> String {
    e.to_string()
}

impl H5 {
    pub fn open(bytes: Bytes) -> Result<H5, String> {
        let file = Hdf5File::from_owner(bytes.clone(), hdf5_reader::OpenOptions::default())
            .map_err(|e| format!("not a readable HDF5 file ({e})"))?;
        let base = file.superblock().base_address;
        Ok(H5 { file, bytes, base })
    }

    pub fn root(&self) -> Result<Group, String> {
        self.file.root_group().map_err(h5err)
    }

    /// The group at a `/`-separated path below `from`.
    pub fn group_at(&self, from: &Group, path: &str) -> Result<Group, String> {
        let mut g = from.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            g = g
                .group(part)
                .map_err(|e| format!("group '{part}' in '{path}': {e}"))?;
        }
        Ok(g)
    }

    /// The dataset at a `/`-separated path below `from`.
    pub fn dataset_at(&self, from: &Group, path: &str) -> Result<Dataset, String> {
        let (dir, leaf) = path.rsplit_once('/').unwrap_or(("", path));
        self.group_at(from, dir)?
            .dataset(leaf)
            .map_err(|e| format!("dataset '{path}': {e}"))
    }

    /// A dataset as a tensor, sharing the file's bytes when it is stored contiguously.
    pub fn tensor(&self, ds: &Dataset) -> Result<Tensor, String> {
        let name = ds.name().to_string();
        let dtype = match ds.dtype() {
            Datatype::FloatingPoint {
                size,
                byte_order: ByteOrder::LittleEndian,
            } => match size {
                2 => DType::F16,
                4 => DType::F32,
                8 => DType::F64,
                _ => return Err(format!("dataset '{name}': {size}-byte floats")),
            },
            Datatype::FixedPoint {
                size,
                signed,
                byte_order: ByteOrder::LittleEndian,
            } => match (size, signed) {
                (1, true) => DType::I8,
                (1, false) => DType::U8,
                (2, true) => DType::I16,
                (2, false) => DType::U16,
                (4, true) => DType::I32,
                (4, false) => DType::U32,
                (8, true) => DType::I64,
                (8, false) => DType::U64,
                _ => return Err(format!("dataset '{name}': {size}-byte integers")),
            },
            other => return Err(format!("dataset '{name}' has element type {other:?}")),
        };
        let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
        let want = shape
            .iter()
            .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("dataset '{name}' is too large"))?;
        // The decoder allocates what the header declares: refuse more than the file's bytes
        // could decode to, so that a lying shape cannot exhaust memory.
        let limit = self.bytes.len().saturating_mul(MAX_EXPANSION);
        if want > limit {
            return Err(format!(
                "dataset '{name}' declares {want} bytes ({shape:?}), more than a {}-byte file \
                 can hold",
                self.bytes.len()
            ));
        }
        let data = match self.contiguous_range(ds)? {
            Some((start, len)) if len == want => self.bytes.slice(start..start + len),
            _ if want == 0 => Bytes::new(),
            // Decoded (chunked, filtered): a deflate bomb may claim the file's full expansion.
            _ if want as u64 > crate::ir::limits::max_inflate_bytes() => {
                return Err(format!(
                    "dataset '{name}' declares {want} bytes ({shape:?}) to decode, past the {} \
                     MiB a compressed dataset may inflate to (--max-inflate-mb or \
                     MDEPLOY_MAX_INFLATE_MB raises it)",
                    crate::ir::limits::max_inflate_bytes() >> 20
                ))
            }
            _ => Bytes::from(ds.read_raw_bytes().map_err(|e| format!("{name}: {e}"))?),
        };
        Tensor::new(dtype, shape, data).map_err(|e| format!("dataset '{name}': {e}"))
    }

    /// Where a contiguous, unfiltered dataset's bytes sit in the file.
    fn contiguous_range(&self, ds: &Dataset) -> Result<Option<(usize, usize)>, String> {
        let header = self.file.get_or_parse_header(ds.address()).map_err(h5err)?;
        let mut range = None;
        for m in &header.messages {
            match m {
                HdfMessage::FilterPipeline(p) if !p.filters.is_empty() => return Ok(None),
                HdfMessage::DataLayout(l) => {
                    if let DataLayout::Contiguous { address, size } = l.layout {
                        range = Some((address, size));
                    }
                }
                _ => {}
            }
        }
        let Some((address, size)) = range else {
            return Ok(None);
        };
        let start = address.checked_add(self.base);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.bytes.len() as u64 => {
                Ok(Some((s as usize, size as usize)))
            }
            _ if size == 0 || address == u64::MAX => Ok(None),
            _ => Err(format!(
                "dataset '{}' points past the end of the file (truncated?)",
                ds.name()
            )),
        }
    }
}

/// A string list attribute. Keras writes an empty list as an empty float64 array, and splits
/// long lists over `name0`, `name1`, … when they pass HDF5's 64 KiB header limit.
pub fn string_list(g: &Group, name: &str) -> Result<Vec<String>, String> {
    let attrs = g.attributes().map_err(h5err)?;
    if let Some(a) = attrs.iter().find(|a| a.name == name) {
        return strings_of(a);
    }
    let mut out = Vec::new();
    for i in 0.. {
        let key = format!("{name}{i}");
        match attrs.iter().find(|a| a.name == key) {
            Some(a) => out.extend(strings_of(a)?),
            None if i == 0 => return Err(format!("attribute '{name}' is missing")),
            None => break,
        }
    }
    Ok(out)
}

fn strings_of(a: &Attribute) -> Result<Vec<String>, String> {
    if a.shape.iter().product::<u64>() == 0 {
        return Ok(vec![]);
    }
    if a.shape.is_empty() {
        return a.read_string().map(|s| vec![s]).map_err(h5err);
    }
    a.read_strings()
        .map_err(|e| format!("attribute '{}': {e}", a.name))
}

/// A scalar string attribute, if present.
pub fn string_attr(g: &Group, name: &str) -> Result<Option<String>, String> {
    let attrs = g.attributes().map_err(h5err)?;
    match attrs.iter().find(|a| a.name == name) {
        Some(a) => a
            .read_string()
            .map(Some)
            .map_err(|e| format!("attribute '{name}': {e}")),
        None => Ok(None),
    }
}

/// Names of the sub-groups of `g`.
pub fn group_names(g: &Group) -> Result<Vec<String>, String> {
    Ok(g.member_names().map_err(h5err)?.0)
}
