//! Unrolls LSTM and GRU nodes (ONNX LSTM-14 / GRU-14 semantics, gates `iofc` / `zrh`) over a
//! fixed sequence length into MatMul, Add, Mul, Sigmoid/Tanh/Relu, Split, Slice, Reshape and
//! Concat, for formats with no recurrent op (a TF graph runs RNNs as While loops, which a TF.js
//! graph model would need a control-flow executor for).
//!
//! The input projection of every step is one MatMul (`X · Wᵀ + Wb`); each step adds
//! `H · Rᵀ`. A zero initial state is not materialized: the first step drops the terms it would
//! zero, so a symbolic batch needs no zeros of unknown shape. Not unrolled (the node stays and
//! the writer reports why): a symbolic sequence length, `sequence_lens`, peepholes, `clip`,
//! `input_forget`, activations other than Sigmoid/Tanh/Relu, non-constant weights.

use crate::ir::ops::{
    BinaryOp, Concat, MatMul, Reshape, Rnn, RnnDirection, RnnInput, Slice, SliceAxis, Split,
    UnaryOp,
};
use crate::ir::{Dim, Graph, Node, Op, Tensor, ValueId};
use crate::passes::rewrite::Rewriter;

/// Why `n` (an Lstm or Gru) cannot be unrolled, if it cannot.
pub fn why_not(g: &Graph, n: &Node) -> Option<String> {
    let (r, lstm) = match &n.op {
        Op::Lstm(r) => (r, true),
        Op::Gru(r) => (r, false),
        _ => return Some("not a recurrent node".into()),
    };
    let x = g.ty(n.inputs[0]);
    let t_axis = if r.batch_major { 1 } else { 0 };
    if x.shape.get(t_axis).and_then(Dim::fixed).is_none() {
        return Some("the sequence length is not fixed (give it with --input-shape)".into());
    }
    if r.clip.is_some() {
        return Some("cell clipping is not unrolled".into());
    }
    if r.input_forget {
        return Some("coupled input-forget gates are not unrolled".into());
    }
    for (k, slot) in r.optional.iter().enumerate() {
        let v = n.inputs[3 + k];
        match slot {
            RnnInput::SequenceLens => return Some("per-sequence lengths are not unrolled".into()),
            RnnInput::Peepholes
                if g.constant(v)
                    .is_none_or(|t| t.to_f64s().iter().any(|&p| p != 0.0)) =>
            {
                return Some("peephole connections are not unrolled".into())
            }
            RnnInput::Bias if g.constant(v).is_none() => {
                return Some("the bias is not constant".into())
            }
            _ => {}
        }
    }
    if g.constant(n.inputs[1]).is_none() || g.constant(n.inputs[2]).is_none() {
        return Some("the weights are not constant".into());
    }
    let per_dir = if lstm { 3 } else { 2 };
    for a in &r.activations {
        if activation(a).is_none() {
            return Some(format!("activation {a} is not unrolled"));
        }
    }
    if !r.activations.is_empty() && r.activations.len() != per_dir * r.direction.count() as usize {
        return Some(format!(
            "{} activations for {} direction(s)",
            r.activations.len(),
            r.direction.count()
        ));
    }
    None
}

fn activation(name: &str) -> Option<UnaryOp> {
    match name.to_ascii_lowercase().as_str() {
        "sigmoid" => Some(UnaryOp::Sigmoid),
        "tanh" => Some(UnaryOp::Tanh),
        "relu" => Some(UnaryOp::Relu),
        _ => None,
    }
}

/// Unrolls every recurrent node [`why_not`] accepts; returns whether any was.
pub fn unroll_rnns(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        if !matches!(n.op, Op::Lstm(_) | Op::Gru(_)) || why_not(rw.g, &n).is_some() {
            rw.keep(n);
            continue;
        }
        let (r, lstm) = match &n.op {
            Op::Lstm(r) => (r.clone(), true),
            Op::Gru(r) => (r.clone(), false),
            _ => unreachable!("matched above"),
        };
        let mut u = Unroller {
            rw: &mut rw,
            base: n.name.clone(),
            r: &r,
            lstm,
        };
        u.run(&n)?;
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

struct Unroller<'a, 'r, 'g> {
    rw: &'a mut Rewriter<'g>,
    base: String,
    r: &'r Rnn,
    lstm: bool,
}

impl Unroller<'_, '_, '_> {
    fn op(&mut self, op: Op, ins: Vec<ValueId>) -> Result<ValueId, String> {
        self.rw.op(&self.base, op, ins)
    }
    fn bin(&mut self, b: BinaryOp, x: ValueId, y: ValueId) -> Result<ValueId, String> {
        self.op(Op::Binary(b), vec![x, y])
    }
    fn un(&mut self, u: UnaryOp, x: ValueId) -> Result<ValueId, String> {
        self.op(Op::Unary(u), vec![x])
    }
    fn konst(&mut self, tag: &str, t: Tensor) -> ValueId {
        let name = format!("{}/{tag}", self.base);
        self.rw.konst(&name, t)
    }
    fn matmul(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, String> {
        self.op(
            Op::MatMul(MatMul {
                transpose_a: false,
                transpose_b: false,
            }),
            vec![a, b],
        )
    }
    fn reshape(&mut self, x: ValueId, shape: Vec<Dim>) -> Result<ValueId, String> {
        self.op(Op::Reshape(Reshape { shape }), vec![x])
    }
    fn optional(&self, n: &Node, slot: RnnInput) -> Option<ValueId> {
        self.r
            .optional
            .iter()
            .position(|&s| s == slot)
            .map(|k| n.inputs[3 + k])
    }

    fn run(&mut self, n: &Node) -> Result<(), String> {
        let g = &*self.rw.g;
        let x = n.inputs[0];
        let x_ty = g.ty(x).clone();
        let (t_axis, b_axis) = if self.r.batch_major { (1, 0) } else { (0, 1) };
        let steps = x_ty.shape[t_axis].fixed().ok_or("sequence length")? as usize;
        let batch = x_ty.shape[b_axis].clone();
        let h = self.r.hidden_size;
        let gates = if self.lstm { 4 } else { 3 };
        let w = g.constant(n.inputs[1]).cloned().ok_or("W")?;
        let rr = g.constant(n.inputs[2]).cloned().ok_or("R")?;
        let bias = self
            .optional(n, RnnInput::Bias)
            .and_then(|b| g.constant(b).cloned());
        let init_h = self.optional(n, RnnInput::InitialH);
        let init_c = self.optional(n, RnnInput::InitialC);
        let input = x_ty.shape[2].fixed().ok_or("input size must be fixed")? as usize;
        let dirs: Vec<bool> = match self.r.direction {
            RnnDirection::Forward => vec![false],
            RnnDirection::Reverse => vec![true],
            RnnDirection::Bidirectional => vec![false, true],
        };
        let gh = gates * h;
        let (mut ys, mut hs, mut cs) = (vec![], vec![], vec![]);
        for (d, &reverse) in dirs.iter().enumerate() {
            let acts = self.acts(d);
            // Wᵀ [I, G·H] and Rᵀ [H, G·H] of this direction.
            let wd = Tensor::from_f64s(
                w.dtype,
                vec![gh, input],
                &w.to_f64s()[d * gh * input..(d + 1) * gh * input],
            )
            .transposed(&[1, 0]);
            let rd = rr.to_f64s()[d * gh * h..(d + 1) * gh * h].to_vec();
            let bd = bias
                .as_ref()
                .map(|b| b.to_f64s()[d * 2 * gh..(d + 1) * 2 * gh].to_vec());
            let wt = self.konst("w", wd);
            let mut xw = self.matmul(x, wt)?;
            // Input bias (and, for LSTM and the GRU z/r gates, the recurrent bias) once for all steps.
            if let Some(b) = &bd {
                let mut sum: Vec<f64> = (0..gh).map(|i| b[i] + b[gh + i]).collect();
                if !self.lstm {
                    // The candidate's recurrent bias Rbh is applied with the recurrent term.
                    sum[2 * h..].copy_from_slice(&b[2 * h..gh]);
                }
                let bt = self.konst("bias", Tensor::from_f64s(w.dtype, vec![gh], &sum));
                xw = self.bin(BinaryOp::Add, xw, bt)?;
            }
            let rbh = match (&bd, self.lstm) {
                (Some(b), false) => Some(self.konst(
                    "rbh",
                    Tensor::from_f64s(w.dtype, vec![h], &b[gh + 2 * h..2 * gh]),
                )),
                _ => None,
            };
            let rt = |u: &mut Self, rows: std::ops::Range<usize>, tag: &str| {
                let part: Vec<f64> = rd[rows.start * h..rows.end * h].to_vec();
                let t = Tensor::from_f64s(w.dtype, vec![rows.len(), h], &part).transposed(&[1, 0]);
                u.konst(tag, t)
            };
            let (r_all, r_zr, r_h) = if self.lstm {
                (Some(rt(self, 0..gh, "r")), None, None)
            } else {
                (
                    None,
                    Some(rt(self, 0..2 * h, "r_zr")),
                    Some(rt(self, 2 * h..gh, "r_h")),
                )
            };
            let mut state_h = match init_h {
                Some(v) => Some(self.state(v, d, &batch, h)?),
                None => None,
            };
            let mut state_c = match init_c {
                Some(v) => Some(self.state(v, d, &batch, h)?),
                None => None,
            };
            let mut outs = vec![None; steps];
            let order: Vec<usize> = if reverse {
                (0..steps).rev().collect()
            } else {
                (0..steps).collect()
            };
            for t in order {
                let s = self.op(
                    Op::Slice(Slice {
                        axes: vec![SliceAxis {
                            axis: t_axis,
                            start: t as i64,
                            end: t as i64 + 1,
                            step: 1,
                        }],
                    }),
                    vec![xw],
                )?;
                let xt = self.reshape(s, vec![batch.clone(), Dim::Fixed(gh as u64)])?;
                let hnew = if self.lstm {
                    let gsum = match (state_h, r_all) {
                        (Some(hp), Some(r)) => {
                            let hr = self.matmul(hp, r)?;
                            self.bin(BinaryOp::Add, xt, hr)?
                        }
                        _ => xt,
                    };
                    let parts = self.rw.op_multi(
                        &self.base,
                        Op::Split(Split {
                            axis: 1,
                            sizes: vec![h; 4],
                        }),
                        vec![gsum],
                    )?;
                    let i = self.un(acts[0], parts[0])?;
                    let o = self.un(acts[0], parts[1])?;
                    let f = self.un(acts[0], parts[2])?;
                    let c_in = self.un(acts[1], parts[3])?;
                    let ic = self.bin(BinaryOp::Mul, i, c_in)?;
                    let c = match state_c {
                        Some(cp) => {
                            let fc = self.bin(BinaryOp::Mul, f, cp)?;
                            self.bin(BinaryOp::Add, fc, ic)?
                        }
                        None => ic,
                    };
                    state_c = Some(c);
                    let hc = self.un(acts[2], c)?;
                    self.bin(BinaryOp::Mul, o, hc)?
                } else {
                    let parts = self.rw.op_multi(
                        &self.base,
                        Op::Split(Split {
                            axis: 1,
                            sizes: vec![2 * h, h],
                        }),
                        vec![xt],
                    )?;
                    let (x_zr, x_h) = (parts[0], parts[1]);
                    let zr_sum = match (state_h, r_zr) {
                        (Some(hp), Some(r)) => {
                            let hr = self.matmul(hp, r)?;
                            self.bin(BinaryOp::Add, x_zr, hr)?
                        }
                        _ => x_zr,
                    };
                    let zr = self.un(acts[0], zr_sum)?;
                    let zr = self.rw.op_multi(
                        &self.base,
                        Op::Split(Split {
                            axis: 1,
                            sizes: vec![h, h],
                        }),
                        vec![zr],
                    )?;
                    let (z, rg) = (zr[0], zr[1]);
                    // The recurrent part of the candidate.
                    let rec = match (state_h, r_h, self.r.linear_before_reset) {
                        (Some(hp), Some(rh), true) => {
                            let m = self.matmul(hp, rh)?;
                            let m = match rbh {
                                Some(b) => self.bin(BinaryOp::Add, m, b)?,
                                None => m,
                            };
                            Some(self.bin(BinaryOp::Mul, rg, m)?)
                        }
                        (Some(hp), Some(rh), false) => {
                            let rh_prev = self.bin(BinaryOp::Mul, rg, hp)?;
                            let m = self.matmul(rh_prev, rh)?;
                            Some(match rbh {
                                Some(b) => self.bin(BinaryOp::Add, m, b)?,
                                None => m,
                            })
                        }
                        (None, _, true) => match rbh {
                            Some(b) => Some(self.bin(BinaryOp::Mul, rg, b)?),
                            None => None,
                        },
                        (None, _, false) => rbh,
                        (Some(_), None, _) => return Err("GRU recurrence without weights".into()),
                    };
                    let cand = match rec {
                        Some(v) => self.bin(BinaryOp::Add, x_h, v)?,
                        None => x_h,
                    };
                    let hh = self.un(acts[1], cand)?;
                    // H = hh + z · (H_prev - hh)
                    match state_h {
                        Some(hp) => {
                            let diff = self.bin(BinaryOp::Sub, hp, hh)?;
                            let zd = self.bin(BinaryOp::Mul, z, diff)?;
                            self.bin(BinaryOp::Add, hh, zd)?
                        }
                        None => {
                            let zh = self.bin(BinaryOp::Mul, z, hh)?;
                            self.bin(BinaryOp::Sub, hh, zh)?
                        }
                    }
                };
                state_h = Some(hnew);
                outs[t] = Some(hnew);
            }
            // Y of this direction: [T, 1, B, H] (or [B, T, 1, H]).
            let step_shape = if self.r.batch_major {
                vec![
                    batch.clone(),
                    Dim::Fixed(1),
                    Dim::Fixed(1),
                    Dim::Fixed(h as u64),
                ]
            } else {
                vec![
                    Dim::Fixed(1),
                    Dim::Fixed(1),
                    batch.clone(),
                    Dim::Fixed(h as u64),
                ]
            };
            let mut pieces = Vec::with_capacity(steps);
            for v in outs.into_iter().flatten() {
                pieces.push(self.reshape(v, step_shape.clone())?);
            }
            ys.push(if pieces.len() == 1 {
                pieces[0]
            } else {
                self.op(Op::Concat(Concat { axis: t_axis }), pieces)?
            });
            let state_shape = if self.r.batch_major {
                vec![batch.clone(), Dim::Fixed(1), Dim::Fixed(h as u64)]
            } else {
                vec![Dim::Fixed(1), batch.clone(), Dim::Fixed(h as u64)]
            };
            let hl = state_h.ok_or("empty sequence")?;
            hs.push(self.reshape(hl, state_shape.clone())?);
            if let Some(c) = state_c {
                cs.push(self.reshape(c, state_shape)?);
            }
        }
        let d_axis = if self.r.batch_major { 2 } else { 1 };
        let s_axis = if self.r.batch_major { 1 } else { 0 };
        let outs = [(ys, d_axis), (hs, s_axis), (cs, s_axis)];
        for ((vals, axis), &out) in outs.into_iter().zip(&n.outputs) {
            if vals.is_empty() {
                return Err(format!("{}: no cell state to output", n.name));
            }
            let name = self.rw.names.fresh(&n.name);
            if vals.len() == 1 {
                // Re-point the producer of the single piece at the node's output.
                self.rw.retarget_last(vals[0], out);
            } else {
                self.rw
                    .op_into(&name, Op::Concat(Concat { axis }), vals, out);
            }
        }
        Ok(())
    }

    /// Activations `[f, g, h]` (LSTM) or `[f, g]` (GRU) of direction `d`.
    fn acts(&self, d: usize) -> Vec<UnaryOp> {
        let per = if self.lstm { 3 } else { 2 };
        if self.r.activations.is_empty() {
            return vec![UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Tanh][..per].to_vec();
        }
        self.r.activations[d * per..(d + 1) * per]
            .iter()
            .map(|a| activation(a).unwrap_or(UnaryOp::Sigmoid))
            .collect()
    }

    /// Direction `d` of an initial state `[D, B, H]` (or `[B, D, H]`) as `[B, H]`.
    fn state(&mut self, v: ValueId, d: usize, batch: &Dim, h: usize) -> Result<ValueId, String> {
        let axis = if self.r.batch_major { 1 } else { 0 };
        let s = self.op(
            Op::Slice(Slice {
                axes: vec![SliceAxis {
                    axis,
                    start: d as i64,
                    end: d as i64 + 1,
                    step: 1,
                }],
            }),
            vec![v],
        )?;
        self.reshape(s, vec![batch.clone(), Dim::Fixed(h as u64)])
    }
}
