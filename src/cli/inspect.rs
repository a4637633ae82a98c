//! `mdeploy inspect`: inputs/outputs, op histogram, parameter count and bytes; `--json` for
//! machines, `--ir` for the stable IR text form.

use clap::Args;
use mdeploy::error::{Error, Result};
use mdeploy::ir::shape_text;
use mdeploy::pipeline;
use mdeploy::readers::ReadOptions;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    about = "Show a model's inputs, outputs, ops and parameters",
    after_help = "Examples:\n  mdeploy inspect net.onnx\n  mdeploy inspect net.onnx --json | jq .inputs\n  mdeploy inspect net.onnx --ir > net.ir.txt"
)]
pub struct InspectArgs {
    /// Model file or folder.
    pub input: PathBuf,
    /// Machine-readable JSON on stdout.
    #[arg(long, conflicts_with = "ir")]
    pub json: bool,
    /// Print the IR in its stable text form.
    #[arg(long)]
    pub ir: bool,
}

#[derive(serde::Serialize)]
struct Io {
    name: String,
    dtype: String,
    shape: Vec<String>,
}

#[derive(serde::Serialize)]
struct Summary {
    file: String,
    format: String,
    inputs: Vec<Io>,
    outputs: Vec<Io>,
    ops: BTreeMap<String, usize>,
    nodes: usize,
    parameters: usize,
    parameter_bytes: usize,
}

pub fn run(a: InspectArgs) -> Result<()> {
    let model = pipeline::load(&a.input, &ReadOptions::default())?;
    let g = model.graph;
    if a.ir {
        print!("{}", g.to_text());
        return Ok(());
    }
    let io = |ids: &[mdeploy::ir::ValueId]| -> Vec<Io> {
        ids.iter()
            .map(|&v| Io {
                name: g.value(v).name.clone(),
                dtype: g.ty(v).dtype.to_string(),
                shape: g.ty(v).shape.iter().map(|d| d.to_string()).collect(),
            })
            .collect()
    };
    let mut ops = BTreeMap::new();
    for n in &g.nodes {
        *ops.entry(n.op.name()).or_insert(0) += 1;
    }
    let (parameters, parameter_bytes) = g.parameter_stats();
    let parameters = g.source_parameters.unwrap_or(parameters);
    let s = Summary {
        file: a.input.display().to_string(),
        format: model.format.into(),
        inputs: io(&g.inputs),
        outputs: io(&g.outputs),
        ops,
        nodes: g.nodes.len(),
        parameters,
        parameter_bytes,
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| Error::Failed(e.to_string()))?
        );
        return Ok(());
    }
    println!("{} ({})", s.file, s.format);
    for (title, list) in [("inputs", &s.inputs), ("outputs", &s.outputs)] {
        println!("{title}:");
        for v in list {
            let shape: Vec<mdeploy::ir::Dim> = v
                .shape
                .iter()
                .map(|d| {
                    d.parse::<u64>()
                        .map_or(mdeploy::ir::Dim::Sym(d.clone()), mdeploy::ir::Dim::Fixed)
                })
                .collect();
            println!("  {:<24} {:<5} {}", v.name, v.dtype, shape_text(&shape));
        }
    }
    println!("ops ({} nodes):", s.nodes);
    for (op, n) in &s.ops {
        println!("  {op:<24} {n}");
    }
    println!("parameters: {} ({} bytes)", s.parameters, s.parameter_bytes);
    Ok(())
}
