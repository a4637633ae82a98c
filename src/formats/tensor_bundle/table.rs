//! The LevelDB-style sorted string table that holds a tensor bundle's index
//! (`variables.index`): prefix-compressed key/value blocks, each followed by a trailer (a
//! compression byte and the masked CRC32C of contents + that byte), an index block mapping each
//! data block's last key to its handle, and a 48-byte footer (metaindex and index handles,
//! padded, then the magic). Read by the SavedModel reader, written by the SavedModel writer.

use super::crc::{crc32c, mask, unmask};

pub const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
pub const FOOTER_LEN: usize = 48;
/// Keys between restart points (LevelDB's default `block_restart_interval`).
pub const RESTART_INTERVAL: usize = 16;
/// A data block is closed once it reaches this size (TF's `table_options.block_size`).
pub const BLOCK_SIZE: usize = 8 << 10;

pub fn varint(b: &[u8]) -> Option<(u64, usize)> {
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
pub type Entry = (Vec<u8>, Vec<u8>);

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
pub fn read_table(file: &[u8]) -> Result<Vec<Entry>, String> {
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

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A block being built: entries with keys prefix-compressed against the previous key, a
/// restart point (a full key) every [`RESTART_INTERVAL`] entries.
#[derive(Default)]
struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    last: Vec<u8>,
    count: usize,
}

impl BlockBuilder {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.count.is_multiple_of(RESTART_INTERVAL) {
            self.restarts.push(self.buf.len() as u32);
            0
        } else {
            self.last
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last = key.to_vec();
        self.count += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        if self.restarts.is_empty() {
            self.restarts.push(0);
        }
        for r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.buf
    }
}

/// Appends a block with its trailer; returns its handle (offset and size of the contents).
fn put_block(file: &mut Vec<u8>, contents: &[u8]) -> (u64, u64) {
    let off = file.len() as u64;
    file.extend_from_slice(contents);
    file.push(0); // no compression
    let crc = crc32c(&file[off as usize..]);
    file.extend_from_slice(&mask(crc).to_le_bytes());
    (off, contents.len() as u64)
}

fn put_handle(out: &mut Vec<u8>, (off, size): (u64, u64)) {
    put_varint(out, off);
    put_varint(out, size);
}

/// A table holding `entries`, which must be sorted by key (byte order) without duplicates.
pub fn write_table(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut file = Vec::new();
    let mut index = BlockBuilder::default();
    let mut block = BlockBuilder::default();
    for (i, (k, v)) in entries.iter().enumerate() {
        block.add(k, v);
        let last = i + 1 == entries.len();
        if block.buf.len() >= BLOCK_SIZE || last {
            let h = put_block(&mut file, &std::mem::take(&mut block).finish());
            let mut hv = Vec::new();
            put_handle(&mut hv, h);
            // The index key only has to be >= the block's last key and < the next block's
            // first key: the last key itself is both.
            index.add(k, &hv);
        }
    }
    let meta = put_block(&mut file, &BlockBuilder::default().finish());
    let index = put_block(&mut file, &index.finish());
    let mut footer = Vec::with_capacity(FOOTER_LEN);
    put_handle(&mut footer, meta);
    put_handle(&mut footer, index);
    footer.resize(FOOTER_LEN - 8, 0);
    footer.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
    file.extend_from_slice(&footer);
    file
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

    #[test]
    fn written_tables_read_back() {
        let entries: Vec<Entry> = (0..300)
            .map(|i| (format!("key/{i:04}").into_bytes(), vec![i as u8; 40]))
            .collect();
        let file = write_table(&entries);
        assert_eq!(read_table(&file).unwrap(), entries);
        assert_eq!(read_table(&write_table(&[])).unwrap(), vec![]);
        let mut bad = file.clone();
        bad[10] ^= 1;
        assert!(read_table(&bad).is_err());
    }
}
