//! The served models and their versions: which version folders exist, which the policy serves,
//! loading them in the background (a version takes traffic only once it is read, planned and
//! warmed up), keeping the previous one when a new one fails, unloading removed ones (requests
//! in flight keep theirs until they finish), and choosing a version per request (explicit,
//! label, weighted split, latest).

use super::batch::{self, BatchConfig, Batcher};
use super::config::{ModelConfig, Policy};
use super::metrics::Metrics;
use super::model::{self, Loaded};
use super::status::{Reply, Status};
use super::Log;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// What is on disk for a version folder: every file's path, size and modification time. A
/// folder is loaded only once two looks a poll apart see the same fingerprint, so a version
/// being copied in is not loaded half-written.
type Fingerprint = Vec<(PathBuf, u64, u128)>;

/// At most this many files are looked at in one version folder.
const MAX_FILES: usize = 10_000;

#[derive(Clone)]
pub enum State {
    Loading,
    Available(Arc<Loaded>),
    Failed(String),
}

struct Slot {
    state: State,
    /// The folder content last loaded (or tried): a failed version is tried again only once
    /// its content changes.
    tried: Option<Fingerprint>,
    /// A new folder content is loading while this one keeps serving.
    previous: Option<Arc<Loaded>>,
}

struct ModelState {
    config: ModelConfig,
    versions: BTreeMap<u64, Slot>,
    /// Every version folder's fingerprint at the last look (wanted or not), so a folder that
    /// has been still for a poll interval loads as soon as the policy wants it.
    seen: BTreeMap<u64, Fingerprint>,
}

/// How a request names the version it wants.
#[derive(Clone, Debug)]
pub enum Selector {
    Any,
    Version(u64),
    Label(String),
}

pub struct Repository {
    models: RwLock<BTreeMap<String, ModelState>>,
    batching: Option<(BatchConfig, Arc<tokio::sync::Semaphore>)>,
    metrics: Arc<Metrics>,
    log: Log,
    rng: AtomicU64,
    /// Removed versions that requests in flight may still hold: once none is left, freed
    /// memory goes back to the system.
    draining: std::sync::Mutex<Vec<std::sync::Weak<Loaded>>>,
}

/// One version's state, for status and readiness reports.
pub struct VersionStatus {
    pub version: u64,
    pub state: &'static str,
    pub error: Option<String>,
}

impl Repository {
    pub fn new(
        configs: &[ModelConfig],
        batching: Option<(BatchConfig, Arc<tokio::sync::Semaphore>)>,
        metrics: Arc<Metrics>,
        log: Log,
    ) -> Repository {
        let models = configs
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    ModelState {
                        config: c.clone(),
                        versions: BTreeMap::new(),
                        seen: BTreeMap::new(),
                    },
                )
            })
            .collect();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Repository {
            models: RwLock::new(models),
            batching,
            metrics,
            log,
            rng: AtomicU64::new(seed),
            draining: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ModelState>> {
        self.models.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ModelState>> {
        self.models.write().unwrap_or_else(|p| p.into_inner())
    }

    /// One look at every model's folder. Wanted versions whose folder has not changed since
    /// the last look are loaded (here, on the caller's thread: the poller's, never a
    /// request's); then versions no longer wanted are unloaded — but only once a wanted one
    /// takes traffic, or when their folder is gone, so a model never stops serving because a
    /// new version failed or is still loading (TF Serving's availability-preserving policy).
    pub fn poll(&self) {
        let configs: Vec<ModelConfig> = self.read().values().map(|m| m.config.clone()).collect();
        for c in configs {
            let on_disk = versions_on_disk(&c);
            let wanted = wanted(&c.policy, &on_disk);
            let fresh: BTreeMap<u64, Fingerprint> =
                on_disk.iter().map(|(v, p)| (*v, fingerprint(p))).collect();
            let to_load = self.settle(&c.name, &wanted, fresh);
            for v in to_load {
                if let Some((_, path)) = on_disk.iter().find(|(d, _)| *d == v) {
                    self.load(&c.name, v, path);
                }
            }
            let present: Vec<u64> = on_disk.iter().map(|(v, _)| *v).collect();
            self.unload_unwanted(&c.name, &wanted, &present);
        }
        self.release_drained();
    }

    /// Records the fingerprints; returns the wanted versions to load now (still since the last
    /// look, content not tried yet).
    fn settle(&self, name: &str, wanted: &[u64], fresh: BTreeMap<u64, Fingerprint>) -> Vec<u64> {
        let mut models = self.write();
        let Some(m) = models.get_mut(name) else {
            return vec![];
        };
        let mut out = Vec::new();
        for &v in wanted {
            let Some(fp) = fresh.get(&v) else { continue };
            let slot = m.versions.entry(v).or_insert(Slot {
                state: State::Loading,
                tried: None,
                previous: None,
            });
            let still = m.seen.get(&v) == Some(fp);
            if still && slot.tried.as_ref() != Some(fp) {
                slot.tried = Some(fp.clone());
                if let State::Available(old) = &slot.state {
                    slot.previous = Some(old.clone());
                }
                out.push(v);
            }
        }
        m.seen = fresh;
        out
    }

    fn unload_unwanted(&self, name: &str, wanted: &[u64], present: &[u64]) {
        let removed: Vec<u64> = {
            let mut models = self.write();
            let Some(m) = models.get_mut(name) else {
                return;
            };
            let wanted_serves = wanted.iter().any(|v| {
                matches!(
                    m.versions.get(v).map(|s| &s.state),
                    Some(State::Available(_))
                )
            });
            let gone: Vec<u64> = m
                .versions
                .keys()
                .filter(|v| !wanted.contains(v) && (wanted_serves || !present.contains(v)))
                .copied()
                .collect();
            let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
            for v in &gone {
                if let Some(Slot {
                    state: State::Available(l),
                    ..
                }) = m.versions.remove(v)
                {
                    draining.push(Arc::downgrade(&l));
                }
            }
            gone
        };
        for v in removed {
            self.metrics.forget_version(name, v);
            (self.log)(&format!(
                "model '{name}' version {v}: unloaded (no longer served; requests in flight \
                 finish on it)"
            ));
        }
    }

    fn release_drained(&self) {
        let mut draining = self.draining.lock().unwrap_or_else(|p| p.into_inner());
        if draining.is_empty() {
            return;
        }
        draining.retain(|w| w.strong_count() > 0);
        if draining.is_empty() {
            release_freed_memory();
        }
    }

    fn load(&self, name: &str, version: u64, path: &Path) {
        self.metrics.version_state(name, version, 0.0, "loading");
        let result = load_aside(version, path).map(|mut l| {
            if let Some((cfg, gate)) = &self.batching {
                if batch::batchable(&l.signature) {
                    l.batcher = Batcher::start(*cfg, gate.clone());
                }
            }
            l
        });
        let mut models = self.write();
        let Some(slot) = models
            .get_mut(name)
            .and_then(|m| m.versions.get_mut(&version))
        else {
            return;
        };
        match result {
            Ok(loaded) => {
                let secs = loaded.load_time.as_secs_f64();
                (self.log)(&format!(
                    "model '{name}' version {version}: serving {} ({}, {:.1} MB of weights, \
                     loaded and warmed up in {secs:.2} s)",
                    loaded.path.display(),
                    loaded.format,
                    loaded.weight_bytes as f64 / 1e6
                ));
                slot.state = State::Available(Arc::new(loaded));
                slot.previous = None;
                self.metrics.version_state(name, version, secs, "available");
            }
            Err(e) => {
                if let Some(prev) = slot.previous.take() {
                    (self.log)(&format!(
                        "model '{name}' version {version}: the new folder content failed to \
                         load, the previous one keeps serving: {e}"
                    ));
                    slot.state = State::Available(prev);
                } else {
                    (self.log)(&format!(
                        "model '{name}' version {version}: not served, it failed to load: {e}"
                    ));
                    slot.state = State::Failed(e.to_string());
                    self.metrics.version_state(name, version, 0.0, "failed");
                }
            }
        }
    }

    /// Every configured model has a version taking traffic.
    pub fn ready(&self) -> bool {
        let models = self.read();
        !models.is_empty()
            && models.values().all(|m| {
                m.versions
                    .values()
                    .any(|s| matches!(s.state, State::Available(_)))
            })
    }

    pub fn status(&self, name: &str) -> Reply<Vec<VersionStatus>> {
        let models = self.read();
        let m = models.get(name).ok_or_else(|| {
            Status::not_found(format!("Could not find any versions of model {name}"))
        })?;
        Ok(m.versions
            .iter()
            .map(|(&version, s)| {
                let (state, error) = match &s.state {
                    State::Loading => ("LOADING", None),
                    State::Available(_) => ("AVAILABLE", None),
                    State::Failed(e) => ("END", Some(e.clone())),
                };
                VersionStatus {
                    version,
                    state,
                    error,
                }
            })
            .collect())
    }

    /// The version a request gets.
    pub fn resolve(
        &self,
        name: &str,
        sel: &Selector,
        split_key: Option<&str>,
    ) -> Reply<Arc<Loaded>> {
        let models = self.read();
        let m = models.get(name).ok_or_else(|| {
            Status::not_found(format!("Servable not found for request: {sel:?}({name})"))
        })?;
        let version = match sel {
            Selector::Version(v) => *v,
            Selector::Label(l) => *m.config.labels.get(l).ok_or_else(|| {
                Status::not_found(format!("model '{name}' has no version label '{l}'"))
            })?,
            Selector::Any => match self.split_choice(m, split_key) {
                Some(v) => v,
                None => m
                    .versions
                    .iter()
                    .rev()
                    .find(|(_, s)| matches!(s.state, State::Available(_)))
                    .map(|(&v, _)| v)
                    .ok_or_else(|| {
                        Status::new(
                            super::status::Code::Unavailable,
                            format!("model '{name}' has no version loaded yet"),
                        )
                    })?,
            },
        };
        match m.versions.get(&version).map(|s| &s.state) {
            Some(State::Available(l)) => Ok(l.clone()),
            Some(State::Loading) => Err(Status::new(
                super::status::Code::Unavailable,
                format!("model '{name}' version {version} is still loading"),
            )),
            _ => Err(Status::not_found(format!(
                "Servable not found for request: Specific({name}, {version})"
            ))),
        }
    }

    /// A weighted choice among the split's available versions: by the key's hash when given
    /// (the same key always gets the same version while the split holds), else at random.
    fn split_choice(&self, m: &ModelState, key: Option<&str>) -> Option<u64> {
        let live: Vec<(u64, u64)> = m
            .config
            .split
            .iter()
            .filter(|(v, w)| {
                *w > 0
                    && matches!(
                        m.versions.get(v).map(|s| &s.state),
                        Some(State::Available(_))
                    )
            })
            .map(|&(v, w)| (v, w as u64))
            .collect();
        let total: u64 = live.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let draw = match key {
            Some(k) => fnv(k.as_bytes()),
            None => self.next_random(),
        } % total;
        let mut acc = 0;
        let chosen = live.iter().find(|(_, w)| {
            acc += w;
            draw < acc
        })?;
        self.metrics.split_choice(&m.config.name, chosen.0);
        Some(chosen.0)
    }

    fn next_random(&self) -> u64 {
        // xorshift64*; races between requests only reuse a draw, which a split tolerates.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11
    }
}

/// Loads on a thread of its own at a lower CPU priority, so reading and planning a new version
/// does not take cores from the requests other versions are answering.
fn load_aside(version: u64, path: &Path) -> crate::error::Result<Loaded> {
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("mdeploy-load".into())
        .spawn(move || {
            lower_priority();
            model::load(version, &path)
        })
        .map_err(|e| crate::error::failed(format!("starting a loader thread: {e}")))?
        .join()
        .map_err(|_| crate::error::failed("the loader thread panicked"))?
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread (gettid) only changes its scheduling niceness.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Mixed, so nearby keys do not land in nearby buckets.
    h ^ (h >> 29)
}

/// The numbered version folders under a model's base path (or the single file as version 1).
fn versions_on_disk(c: &ModelConfig) -> Vec<(u64, PathBuf)> {
    if c.single_file {
        return if c.base_path.exists() {
            vec![(1, c.base_path.clone())]
        } else {
            vec![]
        };
    }
    let Ok(entries) = std::fs::read_dir(&c.base_path) else {
        return vec![];
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect();
    out.sort();
    out
}

fn wanted(policy: &Policy, on_disk: &[(u64, PathBuf)]) -> Vec<u64> {
    let all: Vec<u64> = on_disk.iter().map(|(v, _)| *v).collect();
    match policy {
        Policy::All => all,
        Policy::Latest(n) => all.iter().rev().take(*n).copied().collect(),
        Policy::Specific(vs) => all.into_iter().filter(|v| vs.contains(v)).collect(),
    }
}

fn fingerprint(path: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if out.len() >= MAX_FILES {
            break;
        }
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push((p, meta.len(), mtime));
        }
    }
    out.sort();
    out
}

/// Hands memory freed by an unloaded version back to the system (glibc keeps freed heap
/// otherwise, and a server that swaps versions would only grow).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
