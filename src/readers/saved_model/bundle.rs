//! The variables bundle of a SavedModel (TensorFlow's `tensor_bundle` checkpoint format):
//! `variables/variables.index` is a LevelDB-style sorted string table mapping each checkpoint
//! key to a `BundleEntryProto` (the empty key holds the `BundleHeaderProto`), and
//! `variables.data-SSSSS-of-NNNNN` shards hold the raw little-endian tensor bytes.
//!
//! Shards are memory-mapped; a tensor is a `Bytes` slice of its shard, never copied. Table
//! blocks and tensors carry masked CRC32C checksums, which are checked (tensors when first read).

use super::crc::{crc32c, extend, unmask};
use crate::gen::tensor_bundle::{BundleEntryProto, BundleHeaderProto};
use crate::ir::mapped::map_file;
use crate::ir::{DType, Tensor};
use bytes::Bytes;
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER_LEN: usize = 48;
/// The checkpoint key of the serialized `TrackableObjectGraph` (TF2 object-based checkpoints).
pub const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

pub struct Bundle {
    index_path: PathBuf,
    prefix: PathBuf,
    entries: BTreeMap<String, BundleEntryProto>,
    num_shards: usize,
    shards: Vec<Option<Bytes>>,
}

/// A TF `DataType` enum value as an IR element type.
pub fn dtype_from_tf(dt: i32) -> Option<DType> {
    Some(match dt {
        1 => DType::F32,
        2 => DType::F64,
        3 => DType::I32,
        4 => DType::U8,
        5 => DType::I16,
        6 => DType::I8,
        9 => DType::I64,
        10 => DType::Bool,
        14 => DType::BF16,
        17 => DType::U16,
        19 => DType::F16,
        22 => DType::U32,
        23 => DType::U64,
        _ => return None,
    })
}

/// A readable name of a TF `DataType` value, for messages.
pub fn tf_dtype_name(dt: i32) -> String {
    tract_tensorflow::tfpb::tensorflow::DataType::try_from(dt)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("dtype {dt}"))
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

    /// The raw bytes of `key`, checksum-checked.
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
        let got = if e.dtype == DT_STRING {
            string_crc(&data).ok_or_else(|| format!("'{key}': malformed string tensor"))?
        } else {
            crc32c(&data)
        };
        if got != unmask(e.crc32c) {
            return Err(format!(
                "{}: checksum mismatch for variable '{key}' (crc32c {got:08x}, index says {:08x}): \
                 the shard is corrupt",
                self.shard_path(shard_id).display(),
                unmask(e.crc32c)
            ));
        }
        Ok((e, data))
    }

    /// A numeric tensor, sharing the shard's mapping.
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

const DT_STRING: i32 = 7;

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

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn varint_at(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let (v, n) = varint(b.get(*pos..).unwrap_or(&[])).ok_or("bad varint")?;
    *pos += n;
    Ok(v)
}

fn usize_of(v: u64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| "offset too large".to_string())
}

/// A block handle: `(offset, size)` of a block's contents in the file.
fn handle(b: &[u8], pos: &mut usize) -> Result<(usize, usize), String> {
    Ok((usize_of(varint_at(b, pos)?)?, usize_of(varint_at(b, pos)?)?))
}

/// The contents of the block at `(offset, size)`, its trailer (compression byte and masked
/// CRC32C of contents + that byte) checked.
fn block(file: &[u8], (off, size): (usize, usize)) -> Result<&[u8], String> {
    let end = off
        .checked_add(size)
        .and_then(|e| e.checked_add(5))
        .filter(|&e| e <= file.len())
        .ok_or("block past the end of the file")?;
    let contents = &file[off..off + size];
    let kind = file[off + size];
    let stored = u32::from_le_bytes([file[end - 4], file[end - 3], file[end - 2], file[end - 1]]);
    if crc32c(&file[off..off + size + 1]) != unmask(stored) {
        return Err(format!("checksum mismatch in the block at byte {off}"));
    }
    if kind != 0 {
        return Err(format!("compressed blocks (type {kind}) are not supported"));
    }
    Ok(contents)
}

/// A table entry: key and value bytes.
type Entry = (Vec<u8>, Vec<u8>);

/// The key/value entries of one block (prefix-compressed keys, restart array at the end).
fn block_entries(b: &[u8]) -> Result<Vec<Entry>, String> {
    if b.len() < 4 {
        return Err("block too short".into());
    }
    let n_restarts = u32::from_le_bytes([
        b[b.len() - 4],
        b[b.len() - 3],
        b[b.len() - 2],
        b[b.len() - 1],
    ]) as usize;
    let data_end = n_restarts
        .checked_mul(4)
        .and_then(|r| b.len().checked_sub(4 + r))
        .ok_or("bad restart count")?;
    let mut out = Vec::new();
    let mut pos = 0;
    let mut key: Vec<u8> = Vec::new();
    while pos < data_end {
        let shared = usize_of(varint_at(b, &mut pos)?)?;
        let non_shared = usize_of(varint_at(b, &mut pos)?)?;
        let vlen = usize_of(varint_at(b, &mut pos)?)?;
        if shared > key.len() {
            return Err("key shares more than the previous key".into());
        }
        let kend = pos.checked_add(non_shared).filter(|&e| e <= data_end);
        let vend = kend
            .and_then(|k| k.checked_add(vlen))
            .filter(|&e| e <= data_end);
        let (Some(kend), Some(vend)) = (kend, vend) else {
            return Err("entry runs past its block".into());
        };
        key.truncate(shared);
        key.extend_from_slice(&b[pos..kend]);
        out.push((key.clone(), b[kend..vend].to_vec()));
        pos = vend;
    }
    Ok(out)
}

/// Every entry of the table, in key order.
fn read_table(file: &[u8]) -> Result<Vec<Entry>, String> {
    if file.len() < FOOTER_LEN {
        return Err("shorter than a table footer".into());
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&footer[40..]);
    if u64::from_le_bytes(magic) != TABLE_MAGIC {
        return Err("bad table magic".into());
    }
    let mut pos = 0;
    let _meta = handle(footer, &mut pos)?;
    let index = handle(footer, &mut pos)?;
    let mut out = Vec::new();
    for (_, h) in block_entries(block(file, index)?)? {
        let mut p = 0;
        let data = handle(&h, &mut p)?;
        out.extend(block_entries(block(file, data)?)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_blocks() {
        assert_eq!(varint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(varint(&[0x80; 11]), None);
        // One block with keys "ab" and "ac" (the second shares 1 byte), one restart.
        let mut b = vec![0, 2, 1, b'a', b'b', b'x', 1, 1, 1, b'c', b'y'];
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        let e = block_entries(&b).unwrap();
        assert_eq!(e[1], (b"ac".to_vec(), b"y".to_vec()));
        assert!(block_entries(&b[..3]).is_err());
        assert!(read_table(&[0u8; 60]).is_err());
    }
}
