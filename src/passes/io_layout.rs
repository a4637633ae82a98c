//! I/O layout: after the layout pass has moved a channels-first graph to NHWC, its 4-D inputs
//! and outputs are still NCHW with a Transpose at each boundary. `nhwc_io` makes those inputs
//! and outputs NHWC instead and drops the boundary Transposes. Names are kept: the NHWC value
//! takes the input's or output's name. Inputs and outputs without a boundary Transpose (not
//! spatial, or already NHWC) are left as they are.

use super::layout::{inverse, layout_perm};
use crate::ir::{Graph, Layout, Op, ValueId};

/// Returns whether anything changed.
pub fn nhwc_io(g: &mut Graph) -> bool {
    let to_nhwc = layout_perm(Layout::Nchw, Layout::Nhwc, 4);
    let to_nchw = inverse(&to_nhwc);
    let mut changed = false;
    let inputs = g.inputs.clone();
    for x in inputs {
        if g.ty(x).rank() != 4 {
            continue;
        }
        let users: Vec<usize> = (0..g.nodes.len())
            .filter(|&i| g.nodes[i].inputs.contains(&x))
            .collect();
        let all_boundary = !users.is_empty()
            && !g.outputs.contains(&x)
            && users.iter().all(|&i| {
                matches!(&g.nodes[i].op, Op::Transpose(t) if t.perm == to_nhwc)
                    && g.nodes[i].inputs.len() == 1
            });
        if !all_boundary {
            continue;
        }
        let nhwc_ty = g.ty(g.nodes[users[0]].outputs[0]).clone();
        g.value_mut(x).ty = nhwc_ty;
        for &i in &users {
            let out = g.nodes[i].outputs[0];
            g.replace_uses(out, x);
        }
        changed = true;
    }
    let producers = g.producers();
    for k in 0..g.outputs.len() {
        let o = g.outputs[k];
        let Some(&p) = producers.get(&o) else {
            continue;
        };
        let src = g.nodes[p].inputs[0];
        let boundary = matches!(&g.nodes[p].op, Op::Transpose(t) if t.perm == to_nchw)
            && g.ty(o).rank() == 4
            && !g.inputs.contains(&src)
            && g.outputs.iter().filter(|&&v| v == o).count() == 1;
        if !boundary {
            continue;
        }
        // The NHWC value becomes the output under the output's name.
        swap_names(g, o, src);
        g.outputs[k] = src;
        changed = true;
    }
    if changed {
        g.remove_dead();
    }
    changed
}

fn swap_names(g: &mut Graph, a: ValueId, b: ValueId) {
    let na = std::mem::take(&mut g.value_mut(a).name);
    let nb = std::mem::replace(&mut g.value_mut(b).name, na);
    g.value_mut(a).name = nb;
}
