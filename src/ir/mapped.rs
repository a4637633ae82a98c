//! Input files mapped into memory. A constant's bytes may be a slice of the mapped source file
//! (readers share them instead of copying), so the mapping outlives the reader: it lives as
//! long as any tensor refers to it. Passes and evaluation that make their own copy of a mapped
//! constant hand its pages back with [`release_pages`].

use bytes::Bytes;
use std::path::Path;

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
