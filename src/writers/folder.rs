//! Folders written atomically (TF.js models, SavedModels): built at a temporary path beside the
//! target, then renamed into place.

use super::io_err;
use crate::error::{failed, Result};
use std::path::{Path, PathBuf};

/// A folder being written: lives at a temporary path beside its target until `commit`.
pub struct AtomicDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicDir {
    /// `format` names the output kind in messages; `owned` says which entries of an existing
    /// folder such an output holds (a folder holding anything else is not replaced).
    pub fn create(target: &Path, format: &str, owned: &dyn Fn(&str) -> bool) -> Result<AtomicDir> {
        let parent = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(failed(format!(
                "{}: the output folder's parent does not exist",
                parent.display()
            )));
        }
        if target.exists() && !target.is_dir() {
            return Err(failed(format!(
                "{}: exists and is not a folder",
                target.display()
            )));
        }
        // Only a folder holding nothing but such an output (or nothing) is ever replaced.
        if target.is_dir() {
            for e in std::fs::read_dir(target).map_err(io_err(target))? {
                let e = e.map_err(io_err(target))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !owned(&name) {
                    return Err(failed(format!(
                        "{}: the folder exists and holds {name}, which no {format} output has; \
                         not replacing it",
                        target.display()
                    )));
                }
            }
        }
        let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Err(failed(format!(
                "{}: name the output folder itself",
                target.display()
            )));
        };
        super::sweep_stale(&parent, &name);
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        Ok(AtomicDir {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the folder into place. A folder already there is exchanged with the new one in
    /// one step where the system can (Linux `renameat2(RENAME_EXCHANGE)`), then removed from
    /// the temporary name; elsewhere it is moved aside first (`<tmp>.old`, which the next run
    /// puts back if this one dies before the second rename). Either way the target is never
    /// half-written, and whatever a kill leaves is a stale temporary [`super::sweep_stale`] finds.
    pub fn commit(mut self) -> Result<()> {
        if self.target.is_dir() && exchange(&self.tmp, &self.target) {
            // The previous output now sits at the temporary name.
            self.committed = true;
            return std::fs::remove_dir_all(&self.tmp).map_err(io_err(&self.tmp));
        }
        let old = self.tmp.with_file_name(format!(
            "{}.old",
            self.tmp.file_name().unwrap_or_default().to_string_lossy()
        ));
        let had_old = self.target.is_dir();
        if had_old {
            std::fs::rename(&self.target, &old).map_err(io_err(&self.target))?;
        }
        if let Err(e) = std::fs::rename(&self.tmp, &self.target) {
            if had_old {
                let _ = std::fs::rename(&old, &self.target);
            }
            return Err(failed(format!("{}: {e}", self.target.display())));
        }
        self.committed = true;
        if had_old {
            std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
        Ok(())
    }
}

/// Swaps two existing paths atomically; false where the system or file system cannot.
fn exchange(a: &Path, b: &Path) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let (Ok(a), Ok(b)) = (
            std::ffi::CString::new(a.as_os_str().as_bytes()),
            std::ffi::CString::new(b.as_os_str().as_bytes()),
        ) else {
            return false;
        };
        // SAFETY: both are NUL-terminated paths that live across the call.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        r == 0
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (a, b);
        false
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
