//! The variables bundle of a SavedModel (TensorFlow's `tensor_bundle` checkpoint format):
//! `variables/variables.index` is a LevelDB-style sorted string table mapping each checkpoint
//! key to a `BundleEntryProto` (the empty key holds the `BundleHeaderProto`), and
//! `variables.data-SSSSS-of-NNNNN` shards hold the raw little-endian tensor bytes.
//!
//! Shards are memory-mapped; a tensor is a `Bytes` slice of its shard, never copied. Table
//! blocks and tensors carry masked CRC32C checksums, which are checked: table blocks and string
//! tensors as read, numeric tensors all together on all cores when the import has read them
//! ([`Bundle::check_pending`]).

use crate::formats::tensor_bundle::crc::{crc32c, extend, unmask};
use crate::formats::tensor_bundle::table::{read_table, varint};
pub use crate::formats::tensor_bundle::{dtype_from_tf, tf_dtype_name};
use crate::gen::tensor_bundle::{BundleEntryProto, BundleHeaderProto};
use crate::ir::mapped::map_file;
use crate::ir::Tensor;
use bytes::Bytes;
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The checkpoint key of the serialized `TrackableObjectGraph` (TF2 object-based checkpoints).
pub const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

pub struct Bundle {
    index_path: PathBuf,
    prefix: PathBuf,
    entries: BTreeMap<String, BundleEntryProto>,
    num_shards: usize,
    shards: Vec<Option<Bytes>>,
    /// Numeric tensors read and not yet checksum-checked, in read order.
    pending: Vec<Pending>,
}

/// A tensor read, its checksum to be checked: key, shard, bytes, the index's (unmasked) CRC32C.
struct Pending {
    key: String,
    shard: usize,
    data: Bytes,
    want: u32,
}

impl Bundle {
    /// Opens `<dir>/variables/variables.index`; `Ok(None)` when the model has no variables.
    pub fn open(model_dir: &Path) -> Result<Option<Bundle>, String> {
        let index_path = model_dir.join("variables").join("variables.index");
        if !index_path.exists() {
            return Ok(None);
        }
        let bytes = map_file(&index_path)?;
        let what = |e: String| format!("{}: corrupt variables index ({e})", index_path.display());
        let raw = read_table(&bytes).map_err(what)?;
        let mut entries = BTreeMap::new();
        let mut num_shards = 1;
        for (key, value) in raw {
            if key.is_empty() {
                let h = BundleHeaderProto::decode(&value[..])
                    .map_err(|e| what(format!("header: {e}")))?;
                if h.endianness != 0 {
                    return Err(what("big-endian bundles are not supported".into()));
                }
                num_shards = usize::try_from(h.num_shards).unwrap_or(0);
                continue;
            }
            let key = String::from_utf8(key).map_err(|_| what("key is not UTF-8".into()))?;
            let e = BundleEntryProto::decode(&value[..])
                .map_err(|e| what(format!("entry '{key}': {e}")))?;
            entries.insert(key, e);
        }
        Ok(Some(Bundle {
            prefix: model_dir.join("variables").join("variables"),
            index_path,
            entries,
            num_shards,
            shards: vec![None; num_shards],
            pending: Vec::new(),
        }))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn shard_path(&self, id: usize) -> PathBuf {
        let mut p = self.prefix.clone().into_os_string();
        p.push(format!(".data-{id:05}-of-{:05}", self.num_shards));
        PathBuf::from(p)
    }

    fn shard(&mut self, id: usize) -> Result<Bytes, String> {
        if let Some(Some(b)) = self.shards.get(id) {
            return Ok(b.clone());
        }
        if id >= self.num_shards {
            return Err(format!(
                "{}: entry refers to shard {id}, the header says {} shard(s)",
                self.index_path.display(),
                self.num_shards
            ));
        }
        let path = self.shard_path(id);
        if !path.exists() {
            return Err(format!(
                "{}: variables shard is missing (the index lists {} shard(s))",
                path.display(),
                self.num_shards
            ));
        }
        let b = map_file(&path)?;
        self.shards[id] = Some(b.clone());
        Ok(b)
    }

    /// The raw bytes of `key`; a string tensor checksum-checked now, a numeric one by
    /// [`Bundle::check_pending`].
    fn raw(&mut self, key: &str) -> Result<(BundleEntryProto, Bytes), String> {
        let e = self
            .entries
            .get(key)
            .cloned()
            .ok_or_else(|| format!("variable '{key}' is not in the checkpoint"))?;
        if !e.slices.is_empty() {
            return Err(format!(
                "variable '{key}' is saved in slices (partitioned), which is not supported"
            ));
        }
        let shard_id = usize::try_from(e.shard_id).map_err(|_| "negative shard id".to_string())?;
        let shard = self.shard(shard_id)?;
        let (off, size) = (usize::try_from(e.offset).ok(), usize::try_from(e.size).ok());
        let range = match (off, size) {
            (Some(o), Some(s)) if o.checked_add(s).is_some_and(|end| end <= shard.len()) => {
                o..o + s
            }
            _ => {
                return Err(format!(
                "{}: variable '{key}' lies at bytes {}+{} past the end of the shard ({} bytes): \
                     the shard is truncated or corrupt",
                self.shard_path(shard_id).display(),
                e.offset,
                e.size,
                shard.len()
            ))
            }
        };
        let data = shard.slice(range);
        if e.dtype != DT_STRING {
            self.pending.push(Pending {
                key: key.to_string(),
                shard: shard_id,
                data: data.clone(),
                want: unmask(e.crc32c),
            });
            return Ok((e, data));
        }
        let got = string_crc(&data).ok_or_else(|| format!("'{key}': malformed string tensor"))?;
        if got != unmask(e.crc32c) {
            return Err(self.mismatch(key, shard_id, got, unmask(e.crc32c)));
        }
        Ok((e, data))
    }

    fn mismatch(&self, key: &str, shard: usize, got: u32, want: u32) -> String {
        format!(
            "{}: checksum mismatch for variable '{key}' (crc32c {got:08x}, index says {want:08x}): \
             the shard is corrupt",
            self.shard_path(shard).display(),
        )
    }

    /// Checks the checksums of the numeric tensors read since the last call, on all cores:
    /// CRC32C is the one pass over every weight a read makes. The first mismatch in read order
    /// is the error.
    pub fn check_pending(&mut self) -> Result<(), String> {
        let pending = std::mem::take(&mut self.pending);
        let got = crate::parallel::map(&pending, |p| p.data.len(), |p| crc32c(&p.data));
        match pending.iter().zip(got).find(|(p, got)| *got != p.want) {
            Some((p, got)) => Err(self.mismatch(&p.key, p.shard, got, p.want)),
            None => Ok(()),
        }
    }

    /// A numeric tensor, sharing the shard's mapping (its checksum is checked by
    /// [`Bundle::check_pending`]).
    pub fn tensor(&mut self, key: &str) -> Result<Tensor, String> {
        let (e, data) = self.raw(key)?;
        let dtype = dtype_from_tf(e.dtype).ok_or_else(|| {
            format!(
                "variable '{key}' has element type {}, which is not supported",
                tf_dtype_name(e.dtype)
            )
        })?;
        let shape = e
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| usize::try_from(d.size).map_err(|_| "negative dimension"))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Tensor::new(dtype, shape, data).map_err(|e| format!("variable '{key}': {e}"))
    }

    /// A scalar string tensor (the serialized object graph): `varint len`, a masked CRC32C of
    /// the length bytes, then the string bytes.
    pub fn scalar_string(&mut self, key: &str) -> Result<Bytes, String> {
        let (e, data) = self.raw(key)?;
        if e.dtype != DT_STRING {
            return Err(format!("'{key}' is not a string tensor"));
        }
        let (len, n) = varint(&data).ok_or("bad string length")?;
        let start = n + 4;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| format!("'{key}': string runs past its entry"))?;
        Ok(data.slice(start..end))
    }
}

use crate::formats::tensor_bundle::DT_STRING;

/// The checksum TF computes over a string tensor: each length as a little-endian u32 (u64 past
/// 4 GiB), then the stored (masked) length checksum, then the string bytes.
fn string_crc(data: &[u8]) -> Option<u32> {
    // Only scalar strings are read (the object graph); one length, then its checksum.
    let (len, n) = varint(data)?;
    let mut crc = match u32::try_from(len) {
        Ok(l) => extend(0, &l.to_le_bytes()),
        Err(_) => extend(0, &len.to_le_bytes()),
    };
    crc = extend(crc, data.get(n..n + 4)?);
    Some(extend(crc, data.get(n + 4..)?))
}
