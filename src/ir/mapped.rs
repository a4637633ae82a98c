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
    Ok(Bytes::from_owner(MappedFile::new(map, path)))
}

/// Maps the file a model names by `name` (an external-data location, a weight shard), which
/// must stay inside the model's folder `dir`: a plain relative path (no `..`, no root, no
/// drive) whose real path, links followed, lies under the folder's. `what` names the kind of
/// reference in messages ("external data location", "shard path").
pub fn map_inside(dir: &Path, name: &str, what: &str) -> Result<Bytes, String> {
    let rel = Path::new(name);
    let plain = !name.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain {
        return Err(format!(
            "{what} '{name}' leaves the model's folder (only plain relative names are read)"
        ));
    }
    let path = dir.join(rel);
    // A symbolic link inside the folder may still point out of it.
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize()) {
        if !real.starts_with(&root) {
            return Err(format!(
                "{what} '{name}' leaves the model's folder (a link to {})",
                real.display()
            ));
        }
    }
    // A missing file: map_file names it.
    map_file(&path)
}

/// The input files mapped now: address range and real path, for [`release_pages`] and
/// [`files_mapped`].
type Mapping = (usize, usize, Option<std::path::PathBuf>);
static MAPPED: std::sync::Mutex<Vec<Mapping>> = std::sync::Mutex::new(Vec::new());

/// The real paths of the input files mapped now (a model being read or converted, its external
/// data, its shards): an output must never replace one of them.
pub fn files_mapped() -> Vec<std::path::PathBuf> {
    MAPPED.lock().map_or_else(
        |_| Vec::new(),
        |m| m.iter().filter_map(|(_, _, p)| p.clone()).collect(),
    )
}

/// A mapped input file, listed in [`MAPPED`] for as long as it is mapped.
struct MappedFile(memmap2::Mmap);

impl MappedFile {
    fn new(map: memmap2::Mmap, path: &Path) -> MappedFile {
        if let Ok(mut m) = MAPPED.lock() {
            m.push((map.as_ptr() as usize, map.len(), path.canonicalize().ok()));
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
            if let Some(i) = m.iter().position(|&(s, l, _)| (s, l) == range) {
                m.remove(i);
            }
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
        if !maps.iter().any(|&(s, l, _)| s <= start && end <= s + l) {
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

#[cfg(test)]
mod tests {
    use super::map_inside;
    use std::path::Path;

    #[test]
    fn named_files_stay_in_the_folder() {
        for bad in ["../x.bin", "a/../../x", "/etc/passwd", "", "./.."] {
            let e = map_inside(Path::new("/m"), bad, "shard path").unwrap_err();
            assert!(e.contains("leaves the model's folder"), "{bad}: {e}");
        }
        // A plain name is looked up (and here missing), not refused.
        let e = map_inside(Path::new("/m"), "sub/shard.bin", "shard path").unwrap_err();
        assert!(!e.contains("leaves"), "{e}");
    }
}
