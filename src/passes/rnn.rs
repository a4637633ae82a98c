//! LSTM and GRU (the IR's ONNX LSTM-14/GRU-14 semantics) unrolled over a fixed sequence length
//! into ops TFLite has builtins for: one FULLY_CONNECTED per direction for the input projection
//! of every time step at once (biases folded in), SPLIT into steps, then per step a FULLY_CONNECTED of the previous state, ADD,
//! SPLIT into gates, LOGISTIC/TANH and MUL/ADD/SUB for the state update; CONCATENATION stacks the
//! steps into Y. Unrolling (rather than UNIDIRECTIONAL_SEQUENCE_LSTM) covers GRU, both
//! `linear_before_reset` forms, reverse and bidirectional runs, peepholes, `clip` and
//! `input_forget` with exact ONNX semantics.
//!
//! Refused (the node stays and the writer lists the reason from [`why_not`]): a sequence length
//! known only at run time, non-constant weights, `sequence_lens` other than the full length,
//! non-f32 types, activations other than Sigmoid/Tanh/Relu.

use crate::ir::ops::{
    Activation, BinaryOp, Concat, MatMul, Reshape, Rnn, RnnDirection, RnnInput, Slice, SliceAxis,
    Split, UnaryOp,
};
use crate::ir::{DType, Dim, Graph, Node, Op, Shape, Tensor, TensorType, ValueId};
use crate::passes::rewrite::Rewriter;

/// The optional input `which`, if the node has it.
pub(crate) fn optional(r: &Rnn, n: &Node, which: RnnInput) -> Option<ValueId> {
    let k = r.optional.iter().position(|&o| o == which)?;
    n.inputs.get(3 + k).copied()
}

fn activation_names(r: &Rnn, lstm: bool) -> Vec<String> {
    let per_dir: &[&str] = if lstm {
        &["Sigmoid", "Tanh", "Tanh"]
    } else {
        &["Sigmoid", "Tanh"]
    };
    if r.activations.is_empty() {
        let dirs = r.direction.count() as usize;
        return (0..dirs)
            .flat_map(|_| per_dir.iter().map(|s| s.to_string()))
            .collect();
    }
    r.activations.clone()
}

/// Why this recurrent node cannot be unrolled, if it cannot.
pub fn why_not(g: &Graph, n: &Node, r: &Rnn, lstm: bool) -> Option<String> {
    let x = g.ty(n.inputs[0]);
    if x.dtype != DType::F32 {
        return Some(format!("input type {} (only f32 is unrolled)", x.dtype));
    }
    let seq = &x.shape[if r.batch_major { 1 } else { 0 }];
    if seq.fixed() == Some(0) {
        return Some("an empty sequence".into());
    }
    if !seq.is_fixed() {
        return Some(format!(
            "the sequence length '{seq}' is known only at run time: the layer runs as a loop only \
             with constant weights, no sequence_lens and f32 data, and is unrolled only over a \
             fixed length (set it with an input shape override)"
        ));
    }
    let mut consts = vec![n.inputs[1], n.inputs[2]];
    consts.extend(optional(r, n, RnnInput::Bias));
    consts.extend(optional(r, n, RnnInput::Peepholes));
    if consts.iter().any(|&v| g.constant(v).is_none()) {
        return Some("weights, biases and peepholes must be constants".into());
    }
    if let Some(sl) = optional(r, n, RnnInput::SequenceLens) {
        let full = seq.fixed().unwrap_or(0) as i64;
        let all_full = g
            .constant(sl)
            .and_then(Tensor::to_i64s)
            .is_some_and(|v| v.iter().all(|&l| l == full));
        if !all_full {
            return Some(
                "sequence_lens shorter than the sequence (per-example lengths) are not unrolled"
                    .into(),
            );
        }
    }
    if let Some(problem) = shape_problem(g, n, r, lstm, x) {
        return Some(problem);
    }
    if !lstm && r.cell_clip.is_some() {
        return Some("a GRU with a cell clip".into());
    }
    let acts = activation_names(r, lstm);
    if let Some(a) = acts
        .iter()
        .find(|a| !matches!(a.as_str(), "Sigmoid" | "Tanh" | "Relu"))
    {
        return Some(format!(
            "activation '{a}' (Sigmoid, Tanh and Relu are unrolled)"
        ));
    }
    None
}

/// Whether the weights, biases, peepholes and activation list have the sizes ONNX prescribes
/// for `hidden_size` and the input (the unroller slices them by those sizes).
fn shape_problem(g: &Graph, n: &Node, r: &Rnn, lstm: bool, x: &TensorType) -> Option<String> {
    let dirs = r.direction.count() as usize;
    let gates = if lstm { 4 } else { 3 };
    let h = r.hidden_size;
    let Some(input) = x.shape.get(2).and_then(Dim::fixed) else {
        return Some("the input size is known only at run time".into());
    };
    let mut want = vec![
        (n.inputs[1], "W", vec![dirs, gates * h, input as usize]),
        (n.inputs[2], "R", vec![dirs, gates * h, h]),
    ];
    if let Some(b) = optional(r, n, RnnInput::Bias) {
        want.push((b, "B", vec![dirs, 2 * gates * h]));
    }
    if let Some(p) = optional(r, n, RnnInput::Peepholes) {
        want.push((p, "P", vec![dirs, 3 * h]));
    }
    for (v, what, shape) in want {
        let got = g.constant(v).map(|t| t.shape.clone()).unwrap_or_default();
        if got != shape {
            return Some(format!(
                "{what} has shape {got:?}, expected {shape:?} for hidden_size {h}"
            ));
        }
    }
    let per = if lstm { 3 } else { 2 };
    if !r.activations.is_empty() && r.activations.len() != per * dirs {
        return Some(format!(
            "{} activations listed, expected {}",
            r.activations.len(),
            per * dirs
        ));
    }
    None
}

/// Unrolls every LSTM/GRU that can be; returns whether any changed.
pub fn unroll_rnns(g: &mut Graph) -> Result<bool, String> {
    unroll_rnns_where(g, &|_| true)
}

/// Whether `r` has a cell clip, which only an unrolled layer (or TFLite's builtin) computes.
pub fn has_cell_clip(r: &Rnn) -> bool {
    r.cell_clip.is_some()
}

/// Whether `g` (or a body in it) has an LSTM with a cell clip.
pub fn any_cell_clip(g: &Graph) -> bool {
    g.nodes.iter().any(|n| {
        matches!(&n.op, Op::Lstm(r) if has_cell_clip(r))
            || n.op.bodies().iter().any(|(_, b)| any_cell_clip(b))
    })
}

/// Writers whose LSTM has no cell clip (ONNX, and tract through it): every LSTM with one is
/// unrolled over a fixed length, or becomes a loop over steps (`rnn_loop`) whose body is then
/// unrolled; the others stay as they are, so their bytes do not change. Returns whether any
/// changed. A layer neither form takes stays, and the writer names why.
pub fn lower_cell_clips(g: &mut Graph) -> Result<bool, String> {
    let clipped = |n: &Node| matches!(&n.op, Op::Lstm(r) if has_cell_clip(r));
    let mut changed = false;
    if g.nodes.iter().any(clipped) {
        changed |= super::rnn_loop::loop_rnns(g, &|_, n| !clipped(n))?;
        changed |= unroll_rnns_where(g, &has_cell_clip)?;
    }
    let mut inner = false;
    super::for_each_body(g, &mut |body| {
        inner |= lower_cell_clips(body).map_err(crate::error::failed)?;
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(changed || inner)
}

/// Unrolls the LSTMs/GRUs `which` picks that can be; returns whether any changed.
pub fn unroll_rnns_where(g: &mut Graph, which: &dyn Fn(&Rnn) -> bool) -> Result<bool, String> {
    let io = boundary_transposes(g, which);
    let absorbed: std::collections::HashSet<usize> = io
        .values()
        .filter_map(|b| b.y_transpose.map(|t| t.0))
        .collect();
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for (i, n) in old.into_iter().enumerate() {
        if absorbed.contains(&i) {
            // A Transpose to batch-major whose Y the unrolled layer now writes directly.
            continue;
        }
        let (r, lstm) = match &n.op {
            Op::Lstm(r) => (r.clone(), true),
            Op::Gru(r) => (r.clone(), false),
            _ => {
                rw.keep(n);
                continue;
            }
        };
        if !which(&r) || why_not(rw.g, &n, &r, lstm).is_some() {
            rw.keep(n);
            continue;
        }
        let b = io.get(&i).cloned().unwrap_or_default();
        let mut u = Unroll {
            rw: &mut rw,
            base: n.name.clone(),
            consts: Default::default(),
        };
        u.node(&n, &r, lstm, &b)
            .map_err(|e| format!("unrolling '{}': {e}", n.name))?;
        changed = true;
    }
    rw.finish();
    if changed {
        g.remove_dead();
    }
    Ok(changed)
}

/// Transposes between batch-major data and a time-major layer (Keras and PyTorch exports wrap
/// every recurrent layer in them) that the unrolled form can do without.
#[derive(Clone, Debug, Default)]
struct Boundary {
    /// X is `Transpose(src, [1, 0, 2])`: project `src` (batch-major) instead.
    x_source: Option<ValueId>,
    /// Y's only use is this node, `Transpose(Y, [2, 0, 1, 3])` (index, output): write its
    /// output batch-major.
    y_transpose: Option<(usize, ValueId)>,
}

fn boundary_transposes(
    g: &Graph,
    which: &dyn Fn(&Rnn) -> bool,
) -> std::collections::HashMap<usize, Boundary> {
    let producers = g.producers();
    let uses = g.use_counts();
    let mut consumer = std::collections::HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            consumer.insert(v, i);
        }
    }
    let transpose = |i: usize, perm: &[usize]| -> bool {
        matches!(&g.nodes[i].op, Op::Transpose(t) if t.perm == perm)
    };
    let mut out = std::collections::HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let (Op::Lstm(r) | Op::Gru(r)) = &n.op else {
            continue;
        };
        if r.batch_major || !which(r) || why_not(g, n, r, matches!(n.op, Op::Lstm(_))).is_some() {
            continue;
        }
        let mut b = Boundary::default();
        if let Some(&p) = producers.get(&n.inputs[0]) {
            if transpose(p, &[1, 0, 2]) {
                b.x_source = Some(g.nodes[p].inputs[0]);
            }
        }
        let y = n.outputs[0];
        if uses[y.0] == 1 && !g.outputs.contains(&y) {
            if let Some(&c) = consumer.get(&y) {
                if transpose(c, &[2, 0, 1, 3]) {
                    b.y_transpose = Some((c, g.nodes[c].outputs[0]));
                }
            }
        }
        out.insert(i, b);
    }
    out
}

struct Unroll<'r, 'g> {
    rw: &'r mut Rewriter<'g>,
    base: String,
    /// Constants shared by every step (weights, peepholes), made once: the unrolled graph
    /// holds one copy of each, not one per step.
    consts: std::collections::HashMap<String, ValueId>,
}

/// Rows `[from, to)` of direction `d` of a `[dirs, rows, ...]` f32 constant, as f32 values.
fn rows(t: &Tensor, d: usize, from: usize, to: usize) -> Vec<f32> {
    let per_dir = t.len() / t.shape[0].max(1);
    let inner: usize = t.shape[2..].iter().product();
    let v = t.to_f64s();
    v[d * per_dir + from * inner..d * per_dir + to * inner]
        .iter()
        .map(|&x| x as f32)
        .collect()
}

impl Unroll<'_, '_> {
    fn op(&mut self, tag: &str, op: Op, ins: Vec<ValueId>) -> Result<ValueId, String> {
        self.rw.op(&format!("{}/{tag}", self.base), op, ins)
    }
    fn b(&mut self, tag: &str, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, String> {
        self.op(tag, Op::Binary(op), vec![a, b])
    }
    fn konst(&mut self, tag: &str, shape: Vec<usize>, v: &[f32]) -> ValueId {
        let name = format!("{}/{tag}", self.base);
        self.rw.konst(&name, Tensor::from_f32(shape, v))
    }
    fn reshape(&mut self, tag: &str, v: ValueId, shape: Shape) -> Result<ValueId, String> {
        if self.rw.g.ty(v).shape == shape {
            return Ok(v);
        }
        self.op(tag, Op::Reshape(Reshape { shape }), vec![v])
    }
    fn split(
        &mut self,
        tag: &str,
        v: ValueId,
        axis: usize,
        sizes: Vec<usize>,
    ) -> Result<Vec<ValueId>, String> {
        let name = format!("{}/{tag}", self.base);
        self.rw
            .op_multi(&name, Op::Split(Split { axis, sizes }), vec![v])
    }
    /// The constant `key` (computed by `v` the first time it is asked for).
    fn konst_once(
        &mut self,
        key: &str,
        shape: Vec<usize>,
        v: impl FnOnce() -> Vec<f32>,
    ) -> ValueId {
        if let Some(&id) = self.consts.get(key) {
            return id;
        }
        let id = self.konst(key, shape, &v());
        self.consts.insert(key.to_string(), id);
        id
    }
    /// `x @ w^T (+ bias)` with `w` the `[out, in]` constant `key` (made once): FULLY_CONNECTED.
    fn dense(
        &mut self,
        key: &str,
        x: ValueId,
        (out, inp): (usize, usize),
        w: impl FnOnce() -> Vec<f32>,
        bias: Option<&[f32]>,
    ) -> Result<ValueId, String> {
        let wc = self.konst_once(&format!("{key}_w"), vec![out, inp], w);
        let mm = Op::MatMul(MatMul {
            transpose_a: false,
            transpose_b: true,
        });
        let y = self.op(key, mm, vec![x, wc])?;
        match bias {
            Some(b) if b.iter().any(|&v| v != 0.0) => {
                let bc = self.konst_once(&format!("{key}_b"), vec![out], || b.to_vec());
                self.b(key, BinaryOp::Add, y, bc)
            }
            _ => Ok(y),
        }
    }
    fn act(
        &mut self,
        tag: &str,
        name: &str,
        x: ValueId,
        clip: Option<f32>,
    ) -> Result<ValueId, String> {
        let x = match clip {
            Some(c) => self.op(
                &format!("{tag}_clip"),
                Op::Activation(Activation::Clip {
                    min: Some(-c),
                    max: Some(c),
                }),
                vec![x],
            )?,
            None => x,
        };
        let u = match name {
            "Sigmoid" => UnaryOp::Sigmoid,
            "Tanh" => UnaryOp::Tanh,
            "Relu" => UnaryOp::Relu,
            other => return Err(format!("activation {other}")),
        };
        self.op(tag, Op::Unary(u), vec![x])
    }
    /// Direction `d`'s `[batch, hidden]` slice of an initial state, or `None` when it is
    /// absent or constant zeros (the first step then skips the recurrent terms exactly).
    fn initial(
        &mut self,
        v: Option<ValueId>,
        d: usize,
        r: &Rnn,
        bh: &Shape,
    ) -> Result<Option<ValueId>, String> {
        let Some(v) = v else { return Ok(None) };
        if let Some(t) = self.rw.g.constant(v) {
            if t.to_f64s().iter().all(|&x| x == 0.0) {
                return Ok(None);
            }
        }
        let axis = if r.batch_major { 1 } else { 0 };
        let s = Op::Slice(Slice {
            axes: vec![SliceAxis {
                axis,
                start: d as i64,
                end: d as i64 + 1,
                step: 1,
            }],
        });
        let part = self.op(&format!("init{d}"), s, vec![v])?;
        Ok(Some(self.reshape(&format!("init{d}"), part, bh.clone())?))
    }

    fn node(&mut self, n: &Node, r: &Rnn, lstm: bool, io: &Boundary) -> Result<(), String> {
        let x = io.x_source.unwrap_or(n.inputs[0]);
        let x_batch_major = r.batch_major || io.x_source.is_some();
        let y_batch_major = r.batch_major || io.y_transpose.is_some();
        let xs = self.rw.g.ty(x).shape.clone();
        let (seq_axis, batch) = if x_batch_major {
            (1, xs[0].clone())
        } else {
            (0, xs[1].clone())
        };
        let seq = xs[seq_axis].fixed().ok_or("sequence length")?;
        crate::ir::limits::check_fanout(
            seq,
            &format!("a recurrent layer unrolled over {seq} steps"),
        )?;
        let seq = seq as usize;
        let input = xs[2].fixed().ok_or("input size must be fixed")? as usize;
        let h = r.hidden_size;
        let gates = if lstm { 4 } else { 3 };
        let w = self.rw.g.constant(n.inputs[1]).cloned().ok_or("W")?;
        let rr = self.rw.g.constant(n.inputs[2]).cloned().ok_or("R")?;
        let bias = optional(r, n, RnnInput::Bias).and_then(|b| self.rw.g.constant(b).cloned());
        let peep = optional(r, n, RnnInput::Peepholes).and_then(|p| self.rw.g.constant(p).cloned());
        let acts = activation_names(r, lstm);
        let per = if lstm { 3 } else { 2 };
        let bh: Shape = vec![batch.clone(), Dim::Fixed(h as u64)];
        // Every step's input as one `[seq·batch, input]` matrix, projected once per direction.
        let rows_dim = Dim::product(&[xs[0].clone(), xs[1].clone()]);
        let flat = self.reshape("x", x, vec![rows_dim, Dim::Fixed(input as u64)])?;
        let dirs: Vec<bool> = match r.direction {
            RnnDirection::Forward => vec![false],
            RnnDirection::Reverse => vec![true],
            RnnDirection::Bidirectional => vec![false, true],
        };
        let mut ys = Vec::new();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (d, &reverse) in dirs.iter().enumerate() {
            let bv = |from: usize, to: usize| -> Vec<f32> {
                match &bias {
                    Some(b) => {
                        let v = b.to_f64s();
                        let per_dir = b.len() / b.shape[0].max(1);
                        v[d * per_dir + from..d * per_dir + to]
                            .iter()
                            .map(|&x| x as f32)
                            .collect()
                    }
                    None => vec![0.0; to - from],
                }
            };
            let f = acts[d * per].clone();
            let g_act = acts[d * per + 1].clone();

            // Input projection biases: W's and, where they simply add, R's.
            let mut xb: Vec<f32> = bv(0, gates * h);
            let rb = bv(gates * h, 2 * gates * h);
            // GRU with linear_before_reset: R's h bias sits inside the reset product.
            let add_rb_upto = if !lstm && r.linear_before_reset {
                2 * h
            } else {
                gates * h
            };
            for (xv, rv) in xb.iter_mut().zip(&rb).take(add_rb_upto) {
                *xv += rv;
            }
            let mut h_prev = self.initial(optional(r, n, RnnInput::InitialH), d, r, &bh)?;
            let mut c_prev = if lstm {
                self.initial(optional(r, n, RnnInput::InitialC), d, r, &bh)?
            } else {
                None
            };
            // The projection, back to `[seq, batch, G·h]` (or batch-major) and split per step.
            let gh = Dim::Fixed((gates * h) as u64);
            let all = self.dense(
                &format!("d{d}/x"),
                flat,
                (gates * h, input),
                || rows(&w, d, 0, gates * h),
                Some(&xb),
            )?;
            let mut shaped = xs.clone();
            shaped[2] = gh.clone();
            let all = self.reshape(&format!("d{d}/x"), all, shaped)?;
            let parts = self.split(&format!("d{d}/steps"), all, seq_axis, vec![1; seq])?;
            let mut step_xp = Vec::with_capacity(seq);
            for (t, &p) in parts.iter().enumerate() {
                let s = vec![batch.clone(), gh.clone()];
                step_xp.push(self.reshape(&format!("d{d}t{t}/x"), p, s)?);
            }
            let mut outs = vec![None; seq];
            let order: Vec<usize> = if reverse {
                (0..seq).rev().collect()
            } else {
                (0..seq).collect()
            };
            for t in order {
                let tag = format!("d{d}t{t}");
                let xp = step_xp[t];
                let (hn, cn) = if lstm {
                    let gsum = match h_prev {
                        Some(hp) => {
                            let key = format!("d{d}/h");
                            let hr =
                                self.dense(&key, hp, (4 * h, h), || rows(&rr, d, 0, 4 * h), None)?;
                            self.b(&tag, BinaryOp::Add, xp, hr)?
                        }
                        None => xp,
                    };
                    let parts = self.split(&format!("{tag}/gates"), gsum, 1, vec![h; 4])?;
                    let (mut i, mut o, mut fg, c) = (parts[0], parts[1], parts[2], parts[3]);
                    let pv = |k: usize| peep.as_ref().map(|p| rows(p, d, k * h, (k + 1) * h));
                    if let (Some(cp), Some(pi)) = (c_prev, pv(0)) {
                        let pc = self.konst_once(&format!("d{d}/pi"), vec![h], || pi);
                        let m = self.b(&tag, BinaryOp::Mul, cp, pc)?;
                        i = self.b(&tag, BinaryOp::Add, i, m)?;
                    }
                    if let (Some(cp), Some(pf)) = (c_prev, pv(2)) {
                        let pc = self.konst_once(&format!("d{d}/pf"), vec![h], || pf);
                        let m = self.b(&tag, BinaryOp::Mul, cp, pc)?;
                        fg = self.b(&tag, BinaryOp::Add, fg, m)?;
                    }
                    let i = self.act(&format!("{tag}/i"), &f, i, r.clip)?;
                    let cc = self.act(&format!("{tag}/c"), &g_act, c, r.clip)?;
                    let ic = self.b(&tag, BinaryOp::Mul, i, cc)?;
                    let c_new = match c_prev {
                        Some(cp) => {
                            let fa = if r.input_forget {
                                let one = self.konst_once("one", vec![], || vec![1.0]);
                                self.b(&tag, BinaryOp::Sub, one, i)?
                            } else {
                                self.act(&format!("{tag}/f"), &f, fg, r.clip)?
                            };
                            let fc = self.b(&tag, BinaryOp::Mul, fa, cp)?;
                            self.b(&tag, BinaryOp::Add, fc, ic)?
                        }
                        None => ic,
                    };
                    // TFLite's cell clip bounds the new state before anything reads it.
                    let c_new = match r.cell_clip {
                        Some(cc) => self.op(
                            &format!("{tag}/cell_clip"),
                            Op::Activation(Activation::Clip {
                                min: Some(-cc),
                                max: Some(cc),
                            }),
                            vec![c_new],
                        )?,
                        None => c_new,
                    };
                    if let Some(po) = pv(1) {
                        let pc = self.konst_once(&format!("d{d}/po"), vec![h], || po);
                        let m = self.b(&tag, BinaryOp::Mul, c_new, pc)?;
                        o = self.b(&tag, BinaryOp::Add, o, m)?;
                    }
                    let o = self.act(&format!("{tag}/o"), &f, o, r.clip)?;
                    let hact = acts[d * per + 2].clone();
                    let ch = self.act(&format!("{tag}/ch"), &hact, c_new, None)?;
                    (self.b(&tag, BinaryOp::Mul, o, ch)?, Some(c_new))
                } else {
                    let xparts = self.split(&format!("{tag}/xg"), xp, 1, vec![2 * h, h])?;
                    let (xzr, xh) = (xparts[0], xparts[1]);
                    let (zr_pre, hh_pre) = match h_prev {
                        None => {
                            // h_prev = 0: the recurrent terms are the recurrent biases alone.
                            let hb = if r.linear_before_reset {
                                rb[2 * h..].to_vec()
                            } else {
                                vec![0.0; h]
                            };
                            let zr = xzr;
                            // r (.) (0 @ Rh + Rbh) = r (.) Rbh; (r (.) 0) @ Rh = 0.
                            (zr, Some(hb))
                        }
                        Some(_) => (xzr, None),
                    };
                    let (zr, hh) = match (h_prev, hh_pre) {
                        (Some(hp), _) => {
                            if r.linear_before_reset {
                                let mut hb = vec![0.0; 3 * h];
                                hb[2 * h..].copy_from_slice(&rb[2 * h..]);
                                let w = || rows(&rr, d, 0, 3 * h);
                                let key = format!("d{d}/h");
                                let hr = self.dense(&key, hp, (3 * h, h), w, Some(&hb))?;
                                let hp_parts =
                                    self.split(&format!("{tag}/hg"), hr, 1, vec![2 * h, h])?;
                                let zr = self.b(&tag, BinaryOp::Add, zr_pre, hp_parts[0])?;
                                let zr = self.act(&format!("{tag}/zr"), &f, zr, r.clip)?;
                                let zr_parts =
                                    self.split(&format!("{tag}/zr"), zr, 1, vec![h, h])?;
                                let rh = self.b(&tag, BinaryOp::Mul, zr_parts[1], hp_parts[1])?;
                                let hh = self.b(&tag, BinaryOp::Add, xh, rh)?;
                                (zr_parts[0], hh)
                            } else {
                                let w = || rows(&rr, d, 0, 2 * h);
                                let hr = self.dense(&format!("d{d}/h"), hp, (2 * h, h), w, None)?;
                                let zr = self.b(&tag, BinaryOp::Add, zr_pre, hr)?;
                                let zr = self.act(&format!("{tag}/zr"), &f, zr, r.clip)?;
                                let zr_parts =
                                    self.split(&format!("{tag}/zr"), zr, 1, vec![h, h])?;
                                let rhp = self.b(&tag, BinaryOp::Mul, zr_parts[1], hp)?;
                                let w = || rows(&rr, d, 2 * h, 3 * h);
                                let rh = self.dense(&format!("d{d}/rh"), rhp, (h, h), w, None)?;
                                let hh = self.b(&tag, BinaryOp::Add, xh, rh)?;
                                (zr_parts[0], hh)
                            }
                        }
                        (None, Some(hb)) => {
                            let zr = self.act(&format!("{tag}/zr"), &f, zr_pre, r.clip)?;
                            let zr_parts = self.split(&format!("{tag}/zr"), zr, 1, vec![h, h])?;
                            let hh = if hb.iter().any(|&v| v != 0.0) {
                                let bc = self.konst_once(&format!("d{d}/rbh"), vec![h], || hb);
                                let rh = self.b(&tag, BinaryOp::Mul, zr_parts[1], bc)?;
                                self.b(&tag, BinaryOp::Add, xh, rh)?
                            } else {
                                xh
                            };
                            (zr_parts[0], hh)
                        }
                        (None, None) => return Err("unreachable GRU state".into()),
                    };
                    let hh = self.act(&format!("{tag}/hh"), &g_act, hh, r.clip)?;
                    // H = (1 - z) (.) hh + z (.) H_prev = hh - z (.) hh + z (.) H_prev.
                    let h_new = match h_prev {
                        Some(hp) => {
                            let diff = self.b(&tag, BinaryOp::Sub, hp, hh)?;
                            let zd = self.b(&tag, BinaryOp::Mul, zr, diff)?;
                            self.b(&tag, BinaryOp::Add, hh, zd)?
                        }
                        None => {
                            let zh = self.b(&tag, BinaryOp::Mul, zr, hh)?;
                            self.b(&tag, BinaryOp::Sub, hh, zh)?
                        }
                    };
                    (h_new, None)
                };
                outs[t] = Some(hn);
                h_prev = Some(hn);
                c_prev = cn;
            }
            let outs: Vec<ValueId> = outs.into_iter().collect::<Option<_>>().ok_or("step")?;
            ys.push(self.stack_y(&outs, r, y_batch_major, &batch, d)?);
            hs.push(self.state(h_prev.ok_or("no steps")?, r, &batch, d)?);
            if let Some(c) = c_prev {
                cs.push(self.state(c, r, &batch, d)?);
            }
        }
        let dir_axis_y = if y_batch_major { 2 } else { 1 };
        let state_axis = if r.batch_major { 1 } else { 0 };
        let y_out = io.y_transpose.map_or(n.outputs[0], |t| t.1);
        self.finish(&ys, dir_axis_y, y_out);
        if let Some(&o) = n.outputs.get(1) {
            self.finish(&hs, state_axis, o);
        }
        if let Some(&o) = n.outputs.get(2) {
            self.finish(&cs, state_axis, o);
        }
        Ok(())
    }

    /// One direction's steps stacked as `[seq, 1, batch, h]` (or `[batch, seq, 1, h]`).
    fn stack_y(
        &mut self,
        outs: &[ValueId],
        r: &Rnn,
        batch_major: bool,
        batch: &Dim,
        d: usize,
    ) -> Result<ValueId, String> {
        let h = Dim::Fixed(r.hidden_size as u64);
        let one = Dim::Fixed(1);
        let (shape, axis) = if batch_major {
            (vec![batch.clone(), one.clone(), one, h], 1)
        } else {
            (vec![one.clone(), one, batch.clone(), h], 0)
        };
        let mut parts = Vec::with_capacity(outs.len());
        for (t, &o) in outs.iter().enumerate() {
            parts.push(self.reshape(&format!("d{d}t{t}/y"), o, shape.clone())?);
        }
        if parts.len() == 1 {
            return Ok(parts[0]);
        }
        self.op(&format!("d{d}/y"), Op::Concat(Concat { axis }), parts)
    }

    /// A final state as `[1, batch, h]` (or `[batch, 1, h]`).
    fn state(&mut self, v: ValueId, r: &Rnn, batch: &Dim, d: usize) -> Result<ValueId, String> {
        let h = Dim::Fixed(r.hidden_size as u64);
        let shape = if r.batch_major {
            vec![batch.clone(), Dim::Fixed(1), h]
        } else {
            vec![Dim::Fixed(1), batch.clone(), h]
        };
        self.op(
            &format!("d{d}/state"),
            Op::Reshape(Reshape { shape }),
            vec![v],
        )
    }

    /// Writes the per-direction parts into the node's output `out` (concatenated on `axis`).
    fn finish(&mut self, parts: &[ValueId], axis: usize, out: ValueId) {
        let shape = self.rw.g.ty(out).shape.clone();
        let name = self.rw.names.fresh(&format!("{}/out", self.base));
        if parts.len() == 1 {
            self.rw
                .op_into(&name, Op::Reshape(Reshape { shape }), parts.to_vec(), out);
        } else {
            self.rw
                .op_into(&name, Op::Concat(Concat { axis }), parts.to_vec(), out);
        }
    }
}

#[cfg(test)]
#[path = "rnn_tests.rs"]
mod tests;
