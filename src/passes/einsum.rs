//! Einsum (ONNX Einsum-12, TF Einsum) lowered to ordinary ops, for writers whose format has no
//! einsum (TFLite): Reduce(Sum) for indices only one operand has and the output lacks, then
//! Transpose + Reshape of each operand to `[batch, rows, contracted]` / `[batch, contracted,
//! cols]`, one MatMul (a constant right operand without batch indices becomes `[cols,
//! contracted]` weights with `transpose_b`, which TFLite runs as FULLY_CONNECTED), and Reshape +
//! Transpose to the output's index order.
//!
//! Indices are classified per operand pair: *batch* (both operands and the output), *contracted*
//! (both operands, not the output), *left/right free* (one operand and the output) and *summed*
//! (one operand only). Ellipses become extra indices, right-aligned per operand as numpy
//! broadcasting aligns them. Refused (the node is kept and the writer reports why): more than
//! two operands, an index repeated within one operand (a diagonal), and an index whose sizes
//! differ between operands (broadcasting a size-1 index).

use crate::ir::ops::{MatMul, Reduce, ReduceKind, Reshape, Transpose};
use crate::ir::{Dim, Graph, Node, Op, Shape, ValueId};
use crate::passes::rewrite::Rewriter;
use std::collections::BTreeMap;

/// An equation with ellipses expanded: one index list per operand and the output's.
#[derive(Debug, PartialEq)]
pub struct Spec {
    pub terms: Vec<Vec<char>>,
    pub out: Vec<char>,
}

/// Parses `eq` for operands of the given ranks; ellipsis dims become indices `\u{100}`….
pub fn parse(eq: &str, ranks: &[usize]) -> Result<Spec, String> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let raw: Vec<&str> = lhs.split(',').collect();
    if raw.len() != ranks.len() {
        return Err(format!(
            "equation has {} operands, the node {}",
            raw.len(),
            ranks.len()
        ));
    }
    let letters = |t: &str| -> Result<Vec<char>, String> {
        let s = t.replacen("...", "", 1);
        match s.chars().find(|c| !c.is_ascii_alphabetic()) {
            Some(c) => Err(format!("unexpected '{c}' in term '{t}'")),
            None => Ok(s.chars().collect()),
        }
    };
    let mut max_ell = 0;
    for (t, &r) in raw.iter().zip(ranks) {
        let n = letters(t)?.len();
        if t.contains("...") {
            max_ell = max_ell.max(
                r.checked_sub(n)
                    .ok_or(format!("term '{t}' exceeds rank {r}"))?,
            );
        } else if n != r {
            return Err(format!("term '{t}' does not match rank {r}"));
        }
    }
    let ell: Vec<char> = (0..max_ell)
        .map(|k| char::from_u32(0x100 + k as u32).unwrap_or('?'))
        .collect();
    let expand = |t: &str, n_ell: usize| -> Result<Vec<char>, String> {
        let (before, after) = t.split_once("...").unwrap_or((t, ""));
        let mut v = letters(before)?;
        v.extend_from_slice(&ell[max_ell - n_ell..]);
        v.extend(letters(after)?);
        Ok(v)
    };
    let mut terms = Vec::with_capacity(raw.len());
    for (t, &r) in raw.iter().zip(ranks) {
        let n_ell = if t.contains("...") {
            r - letters(t)?.len()
        } else {
            0
        };
        terms.push(expand(t, n_ell)?);
    }
    let out = match rhs {
        Some(r) => expand(r, if r.contains("...") { max_ell } else { 0 })?,
        None => {
            let mut counts: BTreeMap<char, usize> = BTreeMap::new();
            for t in &terms {
                for &c in t.iter().filter(|c| c.is_ascii_alphabetic()) {
                    *counts.entry(c).or_default() += 1;
                }
            }
            let mut o = ell.clone();
            o.extend(counts.iter().filter(|(_, &n)| n == 1).map(|(c, _)| *c));
            o
        }
    };
    Ok(Spec { terms, out })
}

/// Why an einsum cannot be lowered, or the size of every index.
pub fn check(eq: &str, shapes: &[&Shape]) -> Result<(Spec, BTreeMap<char, Dim>), String> {
    let ranks: Vec<usize> = shapes.iter().map(|s| s.len()).collect();
    let spec = parse(eq, &ranks)?;
    if spec.terms.len() > 2 {
        return Err(format!(
            "einsum '{eq}' has {} operands; only one or two are lowered",
            spec.terms.len()
        ));
    }
    let mut sizes: BTreeMap<char, Dim> = BTreeMap::new();
    let show = |c: char| {
        if c.is_ascii() {
            c.to_string()
        } else {
            "...".into()
        }
    };
    for (t, shape) in spec.terms.iter().zip(shapes) {
        for (k, (&c, d)) in t.iter().zip(shape.iter()).enumerate() {
            if t[..k].contains(&c) {
                return Err(format!(
                    "einsum '{eq}' repeats index '{}' within one operand (a diagonal); not lowered",
                    show(c)
                ));
            }
            match sizes.get(&c) {
                None => {
                    sizes.insert(c, d.clone());
                }
                Some(prev) if prev == d => {}
                Some(Dim::Sym(_)) if d.is_fixed() && d != &Dim::Fixed(1) => {
                    sizes.insert(c, d.clone());
                }
                Some(prev) if (prev.is_fixed() && !d.is_fixed() && prev != &Dim::Fixed(1)) => {}
                Some(prev) => {
                    return Err(format!(
                        "einsum '{eq}' broadcasts index '{}' ({prev} against {d}); not lowered",
                        show(c)
                    ))
                }
            }
        }
    }
    for &c in &spec.out {
        if !sizes.contains_key(&c) {
            return Err(format!(
                "einsum '{eq}': output index '{}' is in no operand",
                show(c)
            ));
        }
    }
    Ok((spec, sizes))
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

fn positions(from: &[char], order: &[char]) -> Vec<usize> {
    order
        .iter()
        .filter_map(|c| from.iter().position(|x| x == c))
        .collect()
}

/// Lowers every einsum of one or two operands; others are kept. Returns whether any changed.
pub fn lower_einsums(g: &mut Graph) -> Result<bool, String> {
    let (mut rw, old) = Rewriter::begin(g);
    let mut changed = false;
    for n in old {
        let Op::Einsum(e) = &n.op else {
            rw.keep(n);
            continue;
        };
        let shapes: Vec<Shape> = n.inputs.iter().map(|&v| rw.g.ty(v).shape.clone()).collect();
        let refs: Vec<&Shape> = shapes.iter().collect();
        let Ok((spec, sizes)) = check(&e.equation, &refs) else {
            rw.keep(n);
            continue;
        };
        let mut l = Lower {
            rw: &mut rw,
            base: n.name.clone(),
            sizes,
        };
        l.node(&n, spec)
            .map_err(|err| format!("lowering einsum '{}': {err}", n.name))?;
        changed = true;
    }
    rw.finish();
    Ok(changed)
}

struct Lower<'r, 'g> {
    rw: &'r mut Rewriter<'g>,
    base: String,
    sizes: BTreeMap<char, Dim>,
}

impl Lower<'_, '_> {
    fn dims(&self, letters: &[char]) -> Shape {
        letters.iter().map(|c| self.sizes[c].clone()).collect()
    }

    /// Reduce-sums the indices of `t` that `keep` does not hold.
    fn sum_out(&mut self, v: ValueId, t: &mut Vec<char>, keep: &[char]) -> Result<ValueId, String> {
        let axes: Vec<usize> = (0..t.len()).filter(|&k| !keep.contains(&t[k])).collect();
        if axes.is_empty() {
            return Ok(v);
        }
        t.retain(|c| keep.contains(c));
        let op = Op::Reduce(Reduce {
            kind: ReduceKind::Sum,
            axes,
            keep_dims: false,
        });
        self.rw.op(&format!("{}/sum", self.base), op, vec![v])
    }

    /// `v` (indices `t`) with its axes in `order`, reshaped to `shape`. Constants are arranged
    /// here (once) so the result stays a constant (FULLY_CONNECTED weights).
    fn arrange(
        &mut self,
        v: ValueId,
        t: &[char],
        order: &[char],
        shape: Shape,
    ) -> Result<ValueId, String> {
        let perm = positions(t, order);
        if let Some(c) = self.rw.g.constant(v).cloned() {
            let c = if is_identity(&perm) {
                c
            } else {
                c.transposed(&perm)
            };
            let fixed = crate::ir::shape_fixed(&shape).ok_or("symbolic constant shape")?;
            if fixed == c.shape {
                if is_identity(&perm) {
                    return Ok(v);
                }
                return Ok(self.rw.konst(&format!("{}/operand", self.base), c));
            }
            return Ok(self
                .rw
                .konst(&format!("{}/operand", self.base), c.reshaped(fixed)));
        }
        let mut cur = v;
        if !is_identity(&perm) {
            let op = Op::Transpose(Transpose { perm });
            cur = self
                .rw
                .op(&format!("{}/transpose", self.base), op, vec![cur])?;
        }
        if self.rw.g.ty(cur).shape != shape {
            let op = Op::Reshape(Reshape { shape });
            cur = self
                .rw
                .op(&format!("{}/reshape", self.base), op, vec![cur])?;
        }
        Ok(cur)
    }

    fn node(&mut self, n: &Node, spec: Spec) -> Result<(), String> {
        let out_shape = self.rw.g.ty(n.outputs[0]).shape.clone();
        let (pre, result) = if spec.terms.len() == 1 {
            let mut t = spec.terms[0].clone();
            let v = self.sum_out(n.inputs[0], &mut t, &spec.out)?;
            (t, v)
        } else {
            self.pair(n, &spec)?
        };
        // `pre` holds the result's indices; make them the output's order and shape.
        let pre_shape: Shape = pre
            .iter()
            .map(|c| {
                let k = spec.out.iter().position(|x| x == c).unwrap_or(0);
                out_shape[k].clone()
            })
            .collect();
        let mut cur = result;
        let perm = positions(&pre, &spec.out);
        if self.rw.g.ty(cur).shape != pre_shape || (cur == n.inputs[0] && is_identity(&perm)) {
            let op = Op::Reshape(Reshape { shape: pre_shape });
            cur = self
                .rw
                .op(&format!("{}/reshape", self.base), op, vec![cur])?;
        }
        if !is_identity(&perm) {
            let op = Op::Transpose(Transpose { perm });
            cur = self
                .rw
                .op(&format!("{}/transpose", self.base), op, vec![cur])?;
        }
        self.rw.retarget_last(cur, n.outputs[0]);
        Ok(())
    }

    /// Two operands: the MatMul and its result's indices (`batch ++ left ++ right`).
    fn pair(&mut self, n: &Node, spec: &Spec) -> Result<(Vec<char>, ValueId), String> {
        let (mut a, mut b) = (n.inputs[0], n.inputs[1]);
        let (mut ta, mut tb) = (spec.terms[0].clone(), spec.terms[1].clone());
        let konst = |g: &Graph, v: ValueId| g.constant(v).is_some();
        if konst(self.rw.g, a) && !konst(self.rw.g, b) {
            std::mem::swap(&mut a, &mut b);
            std::mem::swap(&mut ta, &mut tb);
        }
        let keep_a: Vec<char> = tb.iter().chain(&spec.out).copied().collect();
        let keep_b: Vec<char> = ta.iter().chain(&spec.out).copied().collect();
        let a = self.sum_out(a, &mut ta, &keep_a)?;
        let b = self.sum_out(b, &mut tb, &keep_b)?;
        let out = &spec.out;
        let batch: Vec<char> = out
            .iter()
            .filter(|c| ta.contains(c) && tb.contains(c))
            .copied()
            .collect();
        let left: Vec<char> = out.iter().filter(|c| !tb.contains(c)).copied().collect();
        let left: Vec<char> = left.into_iter().filter(|c| ta.contains(c)).collect();
        let right: Vec<char> = out.iter().filter(|c| !ta.contains(c)).copied().collect();
        let contr: Vec<char> = ta
            .iter()
            .filter(|c| tb.contains(c) && !out.contains(c))
            .copied()
            .collect();
        let k = Dim::product(&self.dims(&contr));
        let r = Dim::product(&self.dims(&right));
        let cat = |parts: &[&[char]]| -> Vec<char> { parts.concat() };

        if batch.is_empty() && konst(self.rw.g, b) {
            // FULLY_CONNECTED form: x `[left.., K]`, weights `[R, K]`.
            let mut xs = self.dims(&left);
            if xs.is_empty() {
                xs.push(Dim::Fixed(1));
            }
            xs.push(k.clone());
            let x = self.arrange(a, &ta, &cat(&[&left, &contr]), xs)?;
            let w = self.arrange(b, &tb, &cat(&[&right, &contr]), vec![r, k])?;
            let mm = Op::MatMul(MatMul {
                transpose_a: false,
                transpose_b: true,
            });
            let y = self
                .rw
                .op(&format!("{}/matmul", self.base), mm, vec![x, w])?;
            return Ok((cat(&[&left, &right]), y));
        }
        let l = Dim::product(&self.dims(&left));
        let bs: Shape = if batch.is_empty() {
            vec![]
        } else {
            vec![Dim::product(&self.dims(&batch))]
        };
        let with = |x: Dim, y: Dim| -> Shape { bs.iter().cloned().chain([x, y]).collect() };
        // Use MatMul's own transposition flags when they spare a Transpose.
        let a_plain = cat(&[&batch, &left, &contr]);
        let a_swap = cat(&[&batch, &contr, &left]);
        let transpose_a = !is_identity(&positions(&ta, &a_plain))
            && is_identity(&positions(&ta, &a_swap))
            && !konst(self.rw.g, a);
        let x = if transpose_a {
            self.arrange(a, &ta, &a_swap, with(k.clone(), l))?
        } else {
            self.arrange(a, &ta, &a_plain, with(l, k.clone()))?
        };
        let b_plain = cat(&[&batch, &contr, &right]);
        let b_swap = cat(&[&batch, &right, &contr]);
        let transpose_b =
            !is_identity(&positions(&tb, &b_plain)) && is_identity(&positions(&tb, &b_swap));
        let w = if transpose_b {
            self.arrange(b, &tb, &b_swap, with(r, k))?
        } else {
            self.arrange(b, &tb, &b_plain, with(k, r))?
        };
        let mm = Op::MatMul(MatMul {
            transpose_a,
            transpose_b,
        });
        let y = self
            .rw
            .op(&format!("{}/matmul", self.base), mm, vec![x, w])?;
        Ok((cat(&[&batch, &left, &right]), y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::Einsum;
    use crate::ir::{fixed_shape, DType, Tensor, TensorType};

    /// Builds `eq` on inputs of `shapes` (a `Some` shape's operand is a seeded constant), lowers
    /// it, and compares tract's results before and after. Returns the lowered op names.
    fn lowered(eq: &str, shapes: &[(Vec<usize>, bool)]) -> Vec<String> {
        let mut g = Graph::new();
        let mut ins = Vec::new();
        for (i, (s, konst)) in shapes.iter().enumerate() {
            let n: usize = s.iter().product();
            if *konst {
                let v: Vec<f32> = (0..n)
                    .map(|k| ((k * 7 + i) % 11) as f32 * 0.1 - 0.5)
                    .collect();
                ins.push(g.add_const(&format!("c{i}"), Tensor::from_f32(s.clone(), &v)));
            } else {
                let ty = TensorType::new(DType::F32, fixed_shape(s));
                ins.push(g.add_input(&format!("x{i}"), ty));
            }
        }
        let op = Op::Einsum(Einsum {
            equation: eq.into(),
        });
        let out = g.add_node("e", op, ins, &["y".into()]).unwrap();
        g.outputs = out;
        let inputs = crate::eval::random_inputs(&g, 3, 1);
        let want = crate::eval::run(&g, &inputs).unwrap();
        assert!(lower_einsums(&mut g).unwrap(), "{eq} not lowered");
        g.remove_dead();
        g.verify().unwrap_or_else(|e| panic!("{eq}: {e}"));
        let got = crate::eval::run(&g, &inputs).unwrap();
        let c = crate::eval::compare("y", &got[0], &want[0]);
        assert!(c.shape_matches && c.max_rel < 1e-5, "{eq}: {c:?}");
        g.nodes.iter().map(|n| n.op.name()).collect()
    }

    #[test]
    fn batched_matmul_forms() {
        let ops = lowered(
            "bij,bjk->bik",
            &[(vec![2, 3, 4], false), (vec![2, 4, 5], false)],
        );
        assert_eq!(ops, ["MatMul"]);
        let ops = lowered("bi,bi->b", &[(vec![3, 6], false), (vec![3, 6], false)]);
        assert!(ops.contains(&"MatMul".to_string()), "{ops:?}");
        // Keras MultiHeadAttention's score and context products.
        lowered(
            "BTNH,BSNH->BNTS",
            &[(vec![2, 6, 2, 4], false), (vec![2, 5, 2, 4], false)],
        );
        lowered(
            "BNTS,BSNH->BTNH",
            &[(vec![2, 2, 6, 5], false), (vec![2, 5, 2, 4], false)],
        );
        lowered(
            "...ij,...jk->...ik",
            &[(vec![2, 3, 4], false), (vec![4, 5], false)],
        );
    }

    #[test]
    fn constant_right_operand_is_fully_connected() {
        // Keras EinsumDense projections: weights become [out, in] with transpose_b.
        let ops = lowered(
            "abcd,cde->abe",
            &[(vec![2, 3, 2, 4], false), (vec![2, 4, 5], true)],
        );
        assert_eq!(ops, ["Reshape", "MatMul"]);
        let ops = lowered(
            "abc,cde->abde",
            &[(vec![2, 3, 4], false), (vec![4, 2, 5], true)],
        );
        assert_eq!(ops, ["MatMul", "Reshape"]);
        // A constant left operand is swapped to the right.
        lowered("ij,bj->bi", &[(vec![5, 4], true), (vec![3, 4], false)]);
    }

    #[test]
    fn sums_transposes_and_outer_products() {
        lowered("ij->ji", &[(vec![3, 4], false)]);
        lowered("ij->i", &[(vec![3, 4], false)]);
        lowered("ij->ij", &[(vec![3, 4], false)]);
        lowered("ij,jk", &[(vec![3, 4], false), (vec![4, 5], false)]);
        lowered("i,j->ij", &[(vec![3], false), (vec![4], false)]);
        lowered(
            "ijk,jil->kl",
            &[(vec![2, 3, 4], false), (vec![3, 2, 5], false)],
        );
        lowered("abc,bd->da", &[(vec![2, 3, 4], false), (vec![3, 5], false)]);
        // (A scalar result, "ij,ij->", lowers the same way, but tract's optimizer rejects the
        // [1,12]x[12,1] product it makes, so it cannot be compared here.)
        lowered(
            "bij,bij->b",
            &[(vec![2, 3, 4], false), (vec![2, 3, 4], false)],
        );
    }

    #[test]
    fn refusals_name_the_reason() {
        let s = fixed_shape(&[3, 3]);
        assert!(check("ii->i", &[&s]).unwrap_err().contains("diagonal"));
        assert!(check("ij,jk,kl->il", &[&s, &s, &s])
            .unwrap_err()
            .contains("3 operands"));
        let one = fixed_shape(&[1, 3]);
        assert!(check("ij,ij->ij", &[&s, &one])
            .unwrap_err()
            .contains("broadcasts"));
    }
}
