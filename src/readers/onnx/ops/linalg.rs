//! Det of small matrices by its cofactor expansion (n ≤ 3: `ad − bc`, the rule of Sarrus), the
//! entries sliced from `[…, n, n]`. Larger matrices need a pivoting elimination no target
//! expresses well and are refused.

use super::super::import::{unsupported, Importer, NodeCtx, NodeError, NodeResult};
use super::build::Build;
use super::Handler;
use crate::ir::ops::BinaryOp;
use crate::ir::ValueId;

pub fn handler(op: &str) -> Option<Handler> {
    Some(match op {
        "Det" => det,
        _ => return None,
    })
}

fn det(imp: &mut Importer, ctx: &NodeCtx) -> NodeResult<Vec<ValueId>> {
    let x = ctx.input(0)?;
    let ty = imp.g.ty(x).clone();
    let r = ty.rank();
    if r < 2 || !ty.dtype.is_float() {
        return Err(NodeError::Invalid(format!(
            "Det needs float [..., n, n] matrices, got {ty}"
        )));
    }
    let n = match (ty.shape[r - 2].fixed(), ty.shape[r - 1].fixed()) {
        (Some(a), Some(b)) if a == b => a as usize,
        (Some(_), Some(_)) => return Err(NodeError::Invalid(format!("Det of non-square {ty}"))),
        _ => return unsupported("Det of matrices whose size is known only at run time"),
    };
    if !(1..=3).contains(&n) {
        return unsupported(format!("Det of {n}×{n} matrices (only up to 3×3)"));
    }
    let mut b = Build::new(imp, &ctx.name);
    let mut e = vec![vec![x; n]; n];
    for (i, row) in e.iter_mut().enumerate() {
        let row_i = b.slice(x, r - 2, i as i64, i as i64 + 1)?;
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = b.slice(row_i, r - 1, j as i64, j as i64 + 1)?;
        }
    }
    let mul = |b: &mut Build, a: ValueId, c: ValueId| b.bin(BinaryOp::Mul, a, c);
    let d = match n {
        1 => e[0][0],
        2 => {
            let ad = mul(&mut b, e[0][0], e[1][1])?;
            let bc = mul(&mut b, e[0][1], e[1][0])?;
            b.bin(BinaryOp::Sub, ad, bc)?
        }
        _ => {
            // a(ei − fh) − b(di − fg) + c(dh − eg)
            let minor = |b: &mut Build,
                         p: (usize, usize),
                         q: (usize, usize),
                         s: (usize, usize),
                         t: (usize, usize)|
             -> NodeResult<ValueId> {
                let pq = b.bin(BinaryOp::Mul, e[p.0][p.1], e[q.0][q.1])?;
                let st = b.bin(BinaryOp::Mul, e[s.0][s.1], e[t.0][t.1])?;
                b.bin(BinaryOp::Sub, pq, st)
            };
            let m0 = minor(&mut b, (1, 1), (2, 2), (1, 2), (2, 1))?;
            let m1 = minor(&mut b, (1, 0), (2, 2), (1, 2), (2, 0))?;
            let m2 = minor(&mut b, (1, 0), (2, 1), (1, 1), (2, 0))?;
            let t0 = mul(&mut b, e[0][0], m0)?;
            let t1 = mul(&mut b, e[0][1], m1)?;
            let t2 = mul(&mut b, e[0][2], m2)?;
            let d = b.bin(BinaryOp::Sub, t0, t1)?;
            b.bin(BinaryOp::Add, d, t2)?
        }
    };
    Ok(vec![b.reshape(d, ty.shape[..r - 2].to_vec())?])
}
