//! Shape operands a mapping computes at run time (`output_shape`, RESHAPE and BROADCAST_TO
//! shapes): constants for fixed dims, SHAPE/GATHER pieces for symbols, products and multiples.

use super::plan::{Cx, Opts, TRef};
use crate::ir::{DType, Dim, TensorType, ValueId};
use std::collections::HashMap;
use tract_tflite::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};

impl Cx<'_> {
    /// A 1-D int32 tensor holding `dims`. Fixed dims are constants; a symbolic dim is read at run
    /// time from the shape of a value in `like` that has the same dim, or left as -1 (at most one,
    /// for RESHAPE only when `allow_infer`).
    pub fn dims_operand(
        &mut self,
        tag: &str,
        dims: &[Dim],
        like: &[ValueId],
        allow_infer: bool,
    ) -> Result<TRef, String> {
        if dims.iter().all(Dim::is_fixed) {
            let v: Vec<i32> = dims.iter().map(|d| d.fixed().unwrap_or(0) as i32).collect();
            return Ok(self.i32_vec(tag, &v));
        }
        let sym_count = dims.iter().filter(|d| !d.is_fixed()).count();
        if allow_infer && sym_count == 1 {
            let v: Vec<i32> = dims
                .iter()
                .map(|d| d.fixed().map_or(-1, |n| n as i32))
                .collect();
            return Ok(self.i32_vec(tag, &v));
        }
        // Pieces: constants for fixed dims, GATHER from a SHAPE for symbols.
        // Graph inputs carry the named symbols too (`batch`, `seq`).
        let like: Vec<ValueId> = like.iter().chain(&self.g.inputs).copied().collect();
        let like = &like[..];
        let mut shapes: HashMap<ValueId, TRef> = HashMap::new();
        let mut pieces = Vec::with_capacity(dims.len());
        let mut inferred = false;
        for (k, d) in dims.iter().enumerate() {
            let found = like.iter().find_map(|&v| {
                let pos = self.g.ty(v).shape.iter().position(|e| e == d)?;
                Some((v, pos))
            });
            let piece = match (d, found) {
                (Dim::Fixed(n), _) => self.i32_vec(&format!("{tag}_{k}"), &[*n as i32]),
                (Dim::Sym(_), Some((v, pos))) => {
                    self.gather_dim(&format!("{tag}_{k}"), v, pos, &mut shapes)
                }
                (Dim::Sym(_), None) if self.product_of_found(d, like) => {
                    self.product_piece(&format!("{tag}_{k}"), d, like, &mut shapes)?
                }
                (Dim::Sym(s), None) if allow_infer && !inferred => {
                    let _ = s;
                    inferred = true;
                    self.i32_vec(&format!("{tag}_{k}"), &[-1])
                }
                (Dim::Sym(s), None) => {
                    return Err(format!(
                        "dimension '{s}' is only known at run time and cannot be computed here"
                    ))
                }
            };
            pieces.push(Some(piece));
        }
        let out = self.temp(
            tag,
            TensorType::new(DType::I32, vec![Dim::Fixed(dims.len() as u64)]),
        );
        self.emit(
            B::CONCATENATION,
            Opts::Concat {
                axis: 0,
                act: Act::NONE,
            },
            pieces,
            vec![out],
        );
        Ok(out)
    }

    /// Whether `d` is a product (`2*height`, `batch*seq`) of symbols each some value in `like`
    /// has as a dimension.
    fn product_of_found(&self, d: &Dim, like: &[ValueId]) -> bool {
        if self.multiple_of_found(d, like).is_some() {
            return true;
        }
        let (c, syms) = d.factors();
        (c != 1 || syms.len() > 1)
            && !syms.is_empty()
            && syms.iter().all(|s| {
                let sym = Dim::Sym(s.clone());
                like.iter().any(|&v| self.g.ty(v).shape.contains(&sym))
            })
    }

    /// A value in `like` with a symbolic dim `e` such that `d = m·e` (`4*h` from a value of
    /// height `2*h`): the value, the axis and `m`.
    fn multiple_of_found(&self, d: &Dim, like: &[ValueId]) -> Option<(ValueId, usize, u64)> {
        like.iter().find_map(|&v| {
            self.g.ty(v).shape.iter().enumerate().find_map(|(pos, e)| {
                let m = d.divide(e).filter(|_| !e.is_fixed())?.fixed()?;
                Some((v, pos, m))
            })
        })
    }

    /// The size of axis `pos` of `v`, one int32 element (a GATHER of its SHAPE).
    fn gather_dim(
        &mut self,
        tag: &str,
        v: ValueId,
        pos: usize,
        shapes: &mut HashMap<ValueId, TRef>,
    ) -> TRef {
        let shape = match shapes.get(&v) {
            Some(&t) => t,
            None => {
                let rank = self.g.ty(v).rank();
                let t = self.temp(
                    &format!("{tag}_shape"),
                    TensorType::new(DType::I32, vec![Dim::Fixed(rank as u64)]),
                );
                // The value as this node reads it: a folded DequantizeLinear output has no tensor
                // of its own, its int8 source has the same shape.
                let read = self.read(v);
                self.emit(B::SHAPE, Opts::Shape, vec![Some(read)], vec![t]);
                shapes.insert(v, t);
                t
            }
        };
        let idx = self.i32_vec(&format!("{tag}_at{pos}"), &[pos as i32]);
        let piece = self.temp(tag, TensorType::new(DType::I32, vec![Dim::Fixed(1)]));
        self.emit(
            B::GATHER,
            Opts::Gather { axis: 0 },
            vec![Some(shape), Some(idx)],
            vec![piece],
        );
        piece
    }

    /// A product dimension as one int32 element: each symbol gathered from the SHAPE of a value
    /// that has it, multiplied together and by the coefficient.
    fn product_piece(
        &mut self,
        tag: &str,
        d: &Dim,
        like: &[ValueId],
        shapes: &mut HashMap<ValueId, TRef>,
    ) -> Result<TRef, String> {
        let one = TensorType::new(DType::I32, vec![Dim::Fixed(1)]);
        if let Some((v, pos, m)) = self.multiple_of_found(d, like) {
            let e = self.gather_dim(tag, v, pos, shapes);
            let coef = self.i32_vec(&format!("{tag}_coef"), &[m as i32]);
            let out = self.temp(&format!("{tag}_mul"), one);
            self.emit(
                B::MUL,
                Opts::Arith(Act::NONE),
                vec![Some(e), Some(coef)],
                vec![out],
            );
            return Ok(out);
        }
        let (c, syms) = d.factors();
        let mut acc = (c != 1).then(|| self.i32_vec(&format!("{tag}_coef"), &[c as i32]));
        for (j, s) in syms.iter().enumerate() {
            let sym = Dim::Sym(s.clone());
            let (v, pos) = like
                .iter()
                .find_map(|&v| Some((v, self.g.ty(v).shape.iter().position(|e| *e == sym)?)))
                .ok_or_else(|| format!("dimension '{s}' is not the size of any known value"))?;
            let piece = self.gather_dim(&format!("{tag}_{j}"), v, pos, shapes);
            acc = Some(match acc {
                None => piece,
                Some(a) => {
                    let m = self.temp(&format!("{tag}_mul{j}"), one.clone());
                    self.emit(
                        B::MUL,
                        Opts::Arith(Act::NONE),
                        vec![Some(a), Some(piece)],
                        vec![m],
                    );
                    m
                }
            });
        }
        acc.ok_or_else(|| format!("dimension '{d}' has no symbol"))
    }
}
