//! Dynamic batching: concurrent requests to one version are merged along the batch axis (the
//! first dimension of every input and output, when the model leaves it to run time), run once,
//! and the outputs split back by rows — up to `max_batch_size` rows, waiting at most
//! `batch_timeout` for more after the first request of a batch.

use super::model::Loaded;
use super::signature::Signature;
use super::status::{Code, Reply, Status};
use super::Ran;
use crate::ir::Tensor;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    pub max_batch_size: usize,
    pub timeout: Duration,
}

struct Job {
    loaded: Arc<Loaded>,
    inputs: Vec<Tensor>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Reply<Ran>>,
}

/// The queue of one version; its task ends when the version is unloaded (the sender dropped).
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

/// Requests waiting per version at most; past it, requests are refused (429) instead of
/// queueing without bound.
const MAX_QUEUED: usize = 4096;

/// A model batches when every input's and output's first dimension is the same run-time
/// symbol (a model whose first axis is time or a sequence position is not merged: its
/// outputs' first dimension is another symbol).
pub fn batchable(sig: &Signature) -> bool {
    sig.shared_first_symbol
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime (`None` outside one).
    pub fn start(cfg: BatchConfig, gate: Arc<Semaphore>) -> Option<Batcher> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        handle.spawn(collect(rx, cfg, gate));
        Some(Batcher { tx })
    }

    pub async fn submit(&self, loaded: Arc<Loaded>, inputs: Vec<Tensor>) -> Reply<Ran> {
        let rows = inputs
            .first()
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(0);
        let (reply, rx) = oneshot::channel();
        let job = Job {
            loaded,
            inputs,
            rows,
            enqueued: Instant::now(),
            reply,
        };
        self.tx.try_send(job).map_err(|_| {
            Status::new(
                Code::ResourceExhausted,
                "the batching queue of this model is full",
            )
        })?;
        rx.await
            .map_err(|_| Status::new(Code::Internal, "the batch was dropped"))?
    }
}

async fn collect(mut rx: mpsc::Receiver<Job>, cfg: BatchConfig, gate: Arc<Semaphore>) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        let deadline = tokio::time::Instant::now() + cfg.timeout;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < cfg.max_batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(j)) if rows + j.rows <= cfg.max_batch_size && fits(&jobs[0], &j) => {
                    rows += j.rows;
                    jobs.push(j);
                }
                Ok(Some(j)) => {
                    carry = Some(j);
                    break;
                }
                _ => break,
            }
        }
        let Ok(permit) = gate.clone().acquire_owned().await else {
            return;
        };
        tokio::task::spawn_blocking(move || {
            run(jobs);
            drop(permit);
        });
    }
}

/// Two requests merge when every input has the same dimensions past the first.
fn fits(a: &Job, b: &Job) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs
            .iter()
            .zip(&b.inputs)
            .all(|(x, y)| x.shape.get(1..) == y.shape.get(1..) && y.shape.first() == Some(&b.rows))
}

fn run(jobs: Vec<Job>) {
    let began = Instant::now();
    if jobs.len() == 1 {
        return run_alone(jobs, began);
    }
    let total: usize = jobs.iter().map(|j| j.rows).sum();
    let merged: Vec<Tensor> = (0..jobs[0].inputs.len())
        .map(|i| concat(jobs.iter().map(|j| &j.inputs[i]), total))
        .collect::<Option<_>>()
        .unwrap_or_default();
    let loaded = jobs[0].loaded.clone();
    match loaded.run(&merged) {
        Ok(outputs) if outputs.iter().all(|o| o.shape.first() == Some(&total)) => {
            let inference = began.elapsed();
            let mut start = 0;
            for j in jobs {
                let part = outputs
                    .iter()
                    .map(|o| rows_of(o, start, j.rows, total))
                    .collect();
                start += j.rows;
                let _ = j.reply.send(Ok(Ran {
                    outputs: part,
                    queue: began.duration_since(j.enqueued),
                    inference,
                    batch: Some(total),
                }));
            }
        }
        // Outputs whose first dimension is not the batch: each request runs on its own.
        _ => run_alone(jobs, began),
    }
}

fn run_alone(jobs: Vec<Job>, began: Instant) {
    for j in jobs {
        let start = Instant::now();
        let result = j
            .loaded
            .run(&j.inputs)
            .map(|outputs| Ran {
                outputs,
                queue: began.duration_since(j.enqueued),
                inference: start.elapsed(),
                batch: Some(j.rows),
            })
            .map_err(|e| Status::invalid(e.to_string()));
        let _ = j.reply.send(result);
    }
}

fn concat<'a>(parts: impl Iterator<Item = &'a Tensor>, total: usize) -> Option<Tensor> {
    let parts: Vec<&Tensor> = parts.collect();
    let first = parts.first()?;
    let mut data = Vec::with_capacity(parts.iter().map(|t| t.data.len()).sum());
    for p in &parts {
        data.extend_from_slice(&p.data);
    }
    let mut shape = first.shape.clone();
    *shape.first_mut()? = total;
    Tensor::new(first.dtype, shape, Bytes::from(data)).ok()
}

/// Rows `start..start + n` of a tensor whose first dimension is `total` (a slice of its bytes).
fn rows_of(t: &Tensor, start: usize, n: usize, total: usize) -> Tensor {
    let row = t.data.len() / total.max(1);
    let mut shape = t.shape.clone();
    shape[0] = n;
    Tensor {
        dtype: t.dtype,
        shape,
        data: t.data.slice(start * row..(start + n) * row),
    }
}
