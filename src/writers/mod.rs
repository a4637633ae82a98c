//! Writers: check the whole graph first (every unsupported thing listed), then write
//! atomically (temp file next to the target, then rename), so nothing half-written is left.

pub mod folder;
pub mod onnx;
pub mod saved_model;
pub mod tf_graph;
pub mod tfjs;
pub mod tflite;

use crate::error::{failed, Result, Unsupported};
use crate::ir::Graph;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a writer reports about its output.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WriteReport {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub nodes: usize,
}

pub trait Writer {
    fn name(&self) -> &'static str;
    /// Rewrites the graph into the form this format needs (layout, lowering).
    fn legalize(&self, g: &mut Graph) -> Result<()>;
    /// Everything in the graph this writer cannot express; empty when it can write it all.
    fn check(&self, g: &Graph) -> Vec<Unsupported>;
    fn write(&self, g: &Graph, out: &Path) -> Result<WriteReport>;

    /// [`legalize`](Writer::legalize), then a check that the rewrites left a valid graph.
    fn legalize_verified(&self, g: &mut Graph) -> Result<()> {
        self.legalize(g)?;
        g.verify().map_err(|e| {
            failed(format!(
                "legalizing for {} broke the graph: {e}",
                self.name()
            ))
        })
    }

    /// Everything [`check`](Writer::check) finds, as one error naming the source `file`.
    fn ensure_writable(&self, g: &Graph, file: &Path) -> Result<()> {
        let items = self.check(g);
        if items.is_empty() {
            return Ok(());
        }
        Err(crate::error::Error::Unsupported {
            file: file.display().to_string(),
            items,
        })
    }
}

/// A file being written: lives at a temporary path beside its target until `commit`.
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<std::io::BufWriter<WritebackFile>>,
}

/// A file being written whose pages start going to the disk every [`WRITEBACK_STEP`] bytes
/// (Linux's `sync_file_range`, not waited for), so that the `fsync` a commit ends with has
/// little left to wait for: the disk works while the rest of the output is produced.
pub struct WritebackFile {
    file: std::fs::File,
    pending: u64,
}

/// Bytes written between two write-back starts.
const WRITEBACK_STEP: u64 = 16 << 20;

impl WritebackFile {
    pub fn new(file: std::fs::File) -> WritebackFile {
        WritebackFile { file, pending: 0 }
    }

    pub fn into_inner(self) -> std::fs::File {
        self.file
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pending += n as u64;
        if self.pending >= WRITEBACK_STEP {
            self.pending = 0;
            start_writeback(&self.file);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Asks the kernel to start writing `f`'s dirty pages back now, without waiting for them
/// (Linux's `sync_file_range`; elsewhere the later `sync_all` does it all).
pub fn start_writeback(f: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for as long as `f` lives; the call only schedules
        // write-back of the whole file (offset 0, length 0 = to the end) and returns.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<AtomicFile> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(failed(format!(
                "{}: the output folder does not exist",
                dir.display()
            )));
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        sweep_stale(&dir, &name);
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let file =
            std::fs::File::create(&tmp).map_err(|e| failed(format!("{}: {e}", tmp.display())))?;
        Ok(AtomicFile {
            tmp,
            target: target.to_path_buf(),
            file: Some(std::io::BufWriter::with_capacity(
                1 << 20,
                WritebackFile::new(file),
            )),
        })
    }

    pub fn writer(&mut self) -> &mut impl Write {
        // `file` is only taken by `commit`, which consumes self.
        self.file.as_mut().expect("AtomicFile used after commit")
    }

    pub fn commit(mut self) -> Result<()> {
        let w = self.file.take().expect("AtomicFile committed twice");
        let (tmp, target) = (&self.tmp, &self.target);
        let done = w
            .into_inner()
            .map_err(|e| failed(format!("{}: {}", tmp.display(), e.error())))
            .and_then(|f| {
                f.into_inner()
                    .sync_all()
                    .map_err(|e| failed(format!("{}: {e}", tmp.display())))
            })
            .and_then(|()| {
                std::fs::rename(tmp, target)
                    .map_err(|e| failed(format!("{}: {e}", target.display())))
            });
        // `file` is gone, so `drop` no longer removes the temporary file: do it on failure here.
        if done.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        done
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Removes what an earlier run writing `dir/name` left when it was killed (SIGKILL runs no
/// clean-up): temporaries are named `.{name}.tmp-{pid}` (a folder being replaced may sit aside
/// as `.{name}.tmp-{pid}.old`), so a run finds them by the name it writes and knows them stale
/// when no process `pid` lives. A live writer's temporaries (another mdeploy writing the same
/// output now) are left alone. A previous folder output set aside and never replaced (the run
/// died between the two renames where no atomic exchange exists) is put back first.
pub(crate) fn sweep_stale(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let (pid, old) = match rest.strip_suffix(".old") {
            Some(p) => (p, true),
            None => (rest, false),
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || process_lives(pid) {
            continue;
        }
        let path = e.path();
        let target = dir.join(name);
        if old && !target.exists() && std::fs::rename(&path, &target).is_ok() {
            continue;
        }
        let _ = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// Whether a process `pid` exists (one we may not signal exists too).
fn process_lives(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 checks existence and permission only; nothing is sent.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

pub fn io_err(path: &Path) -> impl Fn(std::io::Error) -> crate::error::Error + '_ {
    move |e| failed(format!("{}: {e}", path.display()))
}
