//! `variables/variables.index` and `variables/variables.data-00000-of-00001`: the variables as
//! one tensor-bundle shard (raw little-endian bytes back to back, in key order) and its index
//! table (`BundleHeaderProto` under the empty key, a `BundleEntryProto` per key with the masked
//! CRC32C of the tensor's bytes).

use super::variables::Variable;
use crate::error::Result;
use crate::formats::tensor_bundle::crc::{crc32c, mask};
use crate::formats::tensor_bundle::{dtype_to_tf, table};
use crate::gen::tensor_bundle::{
    tensor_shape_proto, BundleEntryProto, BundleHeaderProto, TensorShapeProto,
};
use crate::writers::io_err;
use prost::Message;
use std::io::Write;
use std::path::Path;

/// Writes the bundle of `vars` (sorted by name, names unique) into the folder `dir` (which
/// exists); returns the bytes written.
pub fn write(dir: &Path, vars: &[Variable]) -> Result<u64> {
    let data_path = dir.join("variables.data-00000-of-00001");
    let file = std::fs::File::create(&data_path).map_err(io_err(&data_path))?;
    let mut data =
        std::io::BufWriter::with_capacity(1 << 20, crate::writers::WritebackFile::new(file));
    let header = BundleHeaderProto {
        num_shards: 1,
        endianness: 0,
    };
    let mut entries = vec![(Vec::new(), header.encode_to_vec())];
    // The checksums on all cores first: CRC32C is a whole pass over the weights.
    let crcs = crate::parallel::map(vars, |v| v.tensor.data.len(), |v| crc32c(&v.tensor.data));
    let mut offset = 0u64;
    for (v, crc) in vars.iter().zip(crcs) {
        let bytes = &v.tensor.data;
        data.write_all(bytes).map_err(io_err(&data_path))?;
        let dims = v.tensor.shape.iter().map(|&d| tensor_shape_proto::Dim {
            size: d as i64,
            name: String::new(),
        });
        let e = BundleEntryProto {
            dtype: dtype_to_tf(v.tensor.dtype),
            shape: Some(TensorShapeProto {
                dim: dims.collect(),
                unknown_rank: false,
            }),
            shard_id: 0,
            offset: offset as i64,
            size: bytes.len() as i64,
            crc32c: mask(crc),
            slices: vec![],
        };
        offset += bytes.len() as u64;
        entries.push((v.name.as_bytes().to_vec(), e.encode_to_vec()));
    }
    data.into_inner()
        .map_err(|e| crate::error::failed(format!("{}: {}", data_path.display(), e.error())))
        .and_then(|f| f.into_inner().sync_all().map_err(io_err(&data_path)))?;
    let index = table::write_table(&entries);
    let index_path = dir.join("variables.index");
    std::fs::write(&index_path, &index).map_err(io_err(&index_path))?;
    Ok(offset + index.len() as u64)
}
