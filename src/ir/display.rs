//! The stable text form of a graph (`mdeploy inspect --ir`): one line per input, constant,
//! node and output, in graph order, so that a changed reader shows up as a readable diff.

use super::Graph;
use std::fmt::Write;

impl Graph {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let used_as_input: std::collections::HashSet<_> = self.inputs.iter().collect();
        for &i in &self.inputs {
            let v = self.value(i);
            let _ = writeln!(s, "input  {}: {}", v.name, v.ty);
        }
        for (i, v) in self.values.iter().enumerate() {
            if let Some(t) = &v.constant {
                if !used_as_input.contains(&super::ValueId(i)) {
                    let _ = writeln!(s, "const  {}: {} ({} bytes)", v.name, v.ty, t.data.len());
                }
            }
        }
        for n in &self.nodes {
            let ins: Vec<&str> = n
                .inputs
                .iter()
                .map(|&i| self.value(i).name.as_str())
                .collect();
            let outs: Vec<String> = n
                .outputs
                .iter()
                .map(|&o| format!("{}: {}", self.value(o).name, self.value(o).ty))
                .collect();
            let _ = writeln!(
                s,
                "node   {} = {:?}({}) -> {}",
                n.name,
                n.op,
                ins.join(", "),
                outs.join(", ")
            );
            for (what, body) in n.op.bodies() {
                let _ = writeln!(s, "       {what} {{");
                for line in body.to_text().lines() {
                    let _ = writeln!(s, "         {line}");
                }
                let _ = writeln!(s, "       }}");
            }
            for &o in &n.outputs {
                if let Some(q) = &self.value(o).quant {
                    let _ = writeln!(s, "       quant {}: {:?}", self.value(o).name, q);
                }
            }
        }
        for &o in &self.outputs {
            let v = self.value(o);
            let _ = writeln!(s, "output {}: {}", v.name, v.ty);
        }
        s
    }
}
