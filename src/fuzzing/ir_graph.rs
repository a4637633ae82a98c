//! The structure-aware fuzz target's graphs: bytes, read through [`arbitrary::Unstructured`],
//! become a small random *valid* float32 IR graph — 1–3 inputs of small shapes (a third of the
//! graphs with a symbolic first dimension `N`) and 1–12 nodes drawn from a broad op vocabulary
//! ([`ops`]), each with attributes its op accepts, constants with random weights and operands of
//! shapes that fit (inference rejects a draw that does not, and another is drawn).
//!
//! Values stay finite and moderate: weights lie in [-1, 1], ops defined on part of the reals
//! take an operand made positive first, and ops whose result jumps at a point (rounding,
//! comparisons, thresholds) take graph inputs only — a last-bit difference between two correct
//! writers' arithmetic upstream would otherwise flip them and report a mismatch that is no bug.
//!
//! A known bug avoided (docs/robustness.md): tract 0.23, the reference evaluator, fails to plan
//! a strided Slice, Conv or Pool over an axis of size 1 that a Reshape or Transpose inserted
//! ("Pulling Downsample over AddAxis: Invalid axis"), so the read-back graph of a correct file
//! "does not run". A stride over a dimension of 1 changes nothing; the generator draws 1 there.

mod ops;

use crate::ir::ops::{BinaryOp, UnaryOp};
use crate::ir::{fixed_shape, DType, Dim, Graph, Op, Shape, Tensor, TensorType, ValueId};
use arbitrary::{Result, Unstructured};

/// Elements any one value may hold: an iteration runs every writer and reader.
const MAX_ELEMENTS: usize = 4096;
/// Draws per node before the generator settles for the nodes it has.
const ATTEMPTS: usize = 48;

/// A generated graph and the size its symbolic dimension (if any) takes when it runs.
pub struct Generated {
    pub graph: Graph,
    /// The size of the symbol `N` in the inputs' first dimension: the size the graph was drawn
    /// with, so that a Reshape or Expand drawn to fixed sizes still fits.
    pub sym_size: usize,
}

/// A random valid graph from `u`, or `Err` when no node could be drawn (too few bytes).
pub fn generate(u: &mut Unstructured) -> Result<Generated> {
    let mut b = Builder {
        u,
        g: Graph::new(),
        sym: None,
        pool: Vec::new(),
        inputs: 0,
        names: 0,
    };
    let n_inputs = b.u.int_in_range(1..=3)?;
    let first = b.shape()?;
    // A third of the graphs take a symbolic first dimension `N` on the inputs that have the
    // first input's rank and first dimension: a shadow graph with the symbol is built in step
    // with the fixed one, and a node its inference rejects is drawn again.
    if b.u.ratio(1, 3)? {
        b.sym = Some(Graph::new());
    }
    for i in 0..n_inputs {
        // Later inputs mostly relate to the first (same shape or one it broadcasts with), so
        // binary ops, Concat and Where find partners.
        let shape = match b.u.int_in_range(0..=3)? {
            0 if i > 0 => b.shape()?,
            1 | 2 if i > 0 => b.broadcast_of(&first)?,
            _ => first.clone(),
        };
        let ty = |dims: Shape| TensorType::new(DType::F32, dims);
        let name = format!("x{i}");
        let id = b.g.add_input(&name, ty(fixed_shape(&shape)));
        if let Some(sym) = b.sym.as_mut() {
            let mut dims = fixed_shape(&shape);
            if shape.len() == first.len() && shape[0] == first[0] {
                dims[0] = Dim::Sym("N".into());
            }
            sym.add_input(&name, ty(dims));
        }
        b.pool.push((id, shape));
    }
    b.inputs = n_inputs;
    let target = b.u.int_in_range(1..=12)?;
    let mut made = Vec::new();
    let mut attempts = 0;
    while made.len() < target && attempts < ATTEMPTS * target {
        attempts += 1;
        if let Some(outs) = b.draw()? {
            made.extend(outs);
        }
    }
    let Some(&last) = made.last() else {
        return Err(arbitrary::Error::NotEnoughData);
    };
    let mut outputs = vec![last];
    if made.len() > 1 && b.u.arbitrary::<bool>()? {
        let other = made[b.u.choose_index(made.len() - 1)?];
        outputs.push(other);
    }
    let mut g = b.sym.unwrap_or(b.g);
    g.outputs = outputs;
    g.remove_dead();
    g.verify().map_err(|_| arbitrary::Error::IncorrectFormat)?;
    Ok(Generated {
        graph: g,
        sym_size: first[0],
    })
}

struct Builder<'a, 'b> {
    u: &'b mut Unstructured<'a>,
    g: Graph,
    /// The shadow graph with a symbolic first dimension, when drawn: the same values (ids) and
    /// nodes as `g`.
    sym: Option<Graph>,
    /// Float values a node may take (graph inputs first, then node outputs), with their shapes.
    pool: Vec<(ValueId, Vec<usize>)>,
    /// How many entries of `pool` are graph inputs.
    inputs: usize,
    /// Names handed out so far (`c…` constants, `n…` nodes, `v…` their outputs).
    names: usize,
}

/// The ops drawn, one arm per family.
const FAMILIES: usize = 22;

impl Builder<'_, '_> {
    /// Draws one op family and tries to add a node of it; `None` when the draw did not fit.
    fn draw(&mut self) -> Result<Option<Vec<ValueId>>> {
        let mark = (self.g.values.len(), self.g.nodes.len(), self.pool.len());
        let made = match self.u.choose_index(FAMILIES)? {
            0 => self.unary_smooth()?,
            1 => self.unary_jumpy()?,
            2 => self.unary_positive()?,
            3 => self.activation()?,
            4 => self.binary()?,
            5 => self.matmul()?,
            6 => self.conv()?,
            7 => self.pool_op()?,
            8 => self.batch_norm()?,
            9 => self.softmax_or_layer_norm()?,
            10 => self.reshape()?,
            11 => self.transpose()?,
            12 => self.concat()?,
            13 => self.split()?,
            14 => self.slice()?,
            15 => self.pad()?,
            16 => self.tile()?,
            17 => self.expand()?,
            18 => self.gather()?,
            19 => self.reduce()?,
            20 => self.resize()?,
            _ => self.where_op()?,
        };
        if made.is_none() {
            // Drop the constants (and helper nodes) of a draw that did not fit.
            self.g.values.truncate(mark.0);
            self.g.nodes.truncate(mark.1);
            if let Some(sym) = self.sym.as_mut() {
                sym.values.truncate(mark.0);
                sym.nodes.truncate(mark.1);
            }
            self.pool.truncate(mark.2);
        }
        Ok(made)
    }

    fn fresh(&mut self, base: &str) -> String {
        self.names += 1;
        format!("{base}{}", self.names)
    }

    /// Rank 1–4, dims 1–6.
    fn shape(&mut self) -> Result<Vec<usize>> {
        let rank = self.u.int_in_range(1..=4)?;
        (0..rank).map(|_| self.u.int_in_range(1..=6)).collect()
    }

    /// A shape `s` broadcasts with: a suffix of it, some dims set to 1 (maybe a scalar).
    fn broadcast_of(&mut self, s: &[usize]) -> Result<Vec<usize>> {
        let keep = self.u.int_in_range(0..=s.len())?;
        let mut out = s[s.len() - keep..].to_vec();
        for d in out.iter_mut() {
            if self.u.ratio(1, 3)? {
                *d = 1;
            }
        }
        Ok(out)
    }

    /// A constant of `shape` with values in `[lo, hi]` from a PRNG seeded by the bytes (one
    /// seed per constant keeps the bytes short).
    fn constant(&mut self, shape: &[usize], lo: f32, hi: f32) -> Result<ValueId> {
        let mut state = u64::from(self.u.arbitrary::<u32>()?) * 0x9E37_79B9 + 1;
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                lo + (hi - lo) * unit
            })
            .collect();
        Ok(self.add_const(Tensor::from_f32(shape.to_vec(), &data)))
    }

    fn i64_constant(&mut self, shape: &[usize], v: &[i64]) -> ValueId {
        self.add_const(Tensor::from_i64(shape.to_vec(), v))
    }

    fn add_const(&mut self, t: Tensor) -> ValueId {
        let name = self.fresh("c");
        if let Some(sym) = self.sym.as_mut() {
            sym.add_const(&name, t.clone());
        }
        self.g.add_const(&name, t)
    }

    /// Any float value a node can take.
    fn pick(&mut self) -> Result<(ValueId, Vec<usize>)> {
        // Recent values a little more often, so graphs grow deep as well as wide.
        let n = self.pool.len();
        let i = if self.u.ratio(1, 2)? {
            n - 1 - self.u.choose_index(n.min(3))?
        } else {
            self.u.choose_index(n)?
        };
        Ok(self.pool[i].clone())
    }

    /// A graph input: operands of ops whose result jumps at a point.
    fn pick_input(&mut self) -> Result<(ValueId, Vec<usize>)> {
        let i = self.u.choose_index(self.inputs)?;
        Ok(self.pool[i].clone())
    }

    /// Adds a node of `op` on `inputs` when inference accepts it and its outputs are non-empty
    /// and small; its float outputs join the pool.
    fn node(&mut self, op: Op, inputs: Vec<ValueId>) -> Option<Vec<ValueId>> {
        let types = self.g.infer(&op, &inputs).ok()?;
        let mut shapes = Vec::new();
        for t in &types {
            let s = crate::ir::shape_fixed(&t.shape)?;
            let n: usize = s.iter().product();
            if n == 0 || n > MAX_ELEMENTS || s.len() > 5 {
                return None;
            }
            shapes.push(s);
        }
        let name = self.fresh("n");
        let outs: Vec<String> = (0..types.len())
            .map(|k| format!("v{}_{k}", self.names))
            .collect();
        // The shadow first: its inference may reject what the fixed shapes accept (a Reshape to
        // fixed sizes of an `N`-sized value); a draw returning None drops what either added.
        if let Some(sym) = self.sym.as_mut() {
            sym.add_node(&name, op.clone(), inputs.clone(), &outs)
                .ok()?;
        }
        let ids = self.g.add_node(&name, op, inputs, &outs).ok()?;
        for ((&id, s), t) in ids.iter().zip(shapes).zip(&types) {
            if t.dtype == DType::F32 {
                self.pool.push((id, s));
            }
        }
        Some(ids)
    }

    /// `|x| + 0.5`: an operand for ops defined on positive reals only.
    fn positive(&mut self, x: ValueId) -> Result<Option<ValueId>> {
        let Some(a) = self.node(Op::Unary(UnaryOp::Abs), vec![x]) else {
            return Ok(None);
        };
        let half = self.constant(&[], 0.5, 0.5)?;
        Ok(self
            .node(Op::Binary(BinaryOp::Add), vec![a[0], half])
            .map(|v| v[0]))
    }
}
