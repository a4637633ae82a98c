//! Re-reading a written TFLite file with tract-tflite, the TFLite decoder mdeploy has, as a
//! structural check of the file. tract-tflite (0.23) handles less of TFLite than LiteRT: what it
//! cannot read is reported as its limitation, in words, never as a crash.

use crate::error::{failed, Result};
use tract_onnx::prelude::Framework;
use tract_tflite::tflite::{self, BuiltinOperator, Model};

/// The outcome of re-reading a TFLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// tract-tflite decoded every operator.
    Ok,
    /// The file could not be checked this way: what tract-tflite does not support, phrased to
    /// follow "tract-tflite … ", e.g. "does not support the operator TILE".
    NotChecked(String),
}

/// Decodes the TFLite file at `path` with tract-tflite. Only reading the file is an error; what
/// tract-tflite cannot decode is [`Decoded::NotChecked`].
///
/// Constructs tract-tflite is known to mishandle are looked for first, in the flatbuffer itself,
/// so that tract-tflite is not run on them: an omitted optional input (tensor index -1, e.g.
/// FULLY_CONNECTED without bias) is an out-of-bounds index that panics in it, and a depthwise
/// convolution with a channel multiplier is decoded as if it had none (an error naming channel
/// counts that do not match the file).
pub fn decode_tflite_file(path: &std::path::Path) -> Result<Decoded> {
    let bytes = std::fs::read(path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let model = match tflite::root_as_model(&bytes) {
        Ok(model) => model,
        Err(e) => return Ok(Decoded::NotChecked(format!("rejects the flatbuffer ({e})"))),
    };
    if let Some(why) = known_limitation(&model) {
        return Ok(Decoded::NotChecked(why));
    }
    Ok(run_tract_tflite(&bytes))
}

/// Runs tract-tflite on the bytes with the panic message silenced: a panic is caught and, like
/// an error, described as what tract-tflite could not decode.
fn run_tract_tflite(bytes: &[u8]) -> Decoded {
    // The default hook prints the panic message even when catch_unwind catches it.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| {
        tract_tflite::tflite()
            .model_for_read(&mut &bytes[..])
            .map(|_| ())
    });
    std::panic::set_hook(hook);
    match r {
        Ok(Ok(())) => Decoded::Ok,
        Ok(Err(e)) => Decoded::NotChecked(describe_error(&e)),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Decoded::NotChecked(format!(
                "cannot decode this file (an internal check failed: {})",
                first_line(&msg)
            ))
        }
    }
}

/// The first construct in `model` that tract-tflite 0.23 is known not to decode correctly.
fn known_limitation(model: &Model) -> Option<String> {
    // tract-tflite reads the first subgraph only.
    let graph = model.subgraphs()?.iter().next()?;
    let codes = model.operator_codes()?;
    for op in graph.operators()? {
        let index = usize::try_from(op.opcode_index()).ok()?;
        let code = codes.iter().nth(index)?;
        // As tract-tflite reads it: codes past 127 live in the newer field.
        let builtin = if i32::from(code.deprecated_builtin_code())
            == BuiltinOperator::PLACEHOLDER_FOR_GREATER_OP_CODES.0
        {
            code.builtin_code()
        } else {
            BuiltinOperator(i32::from(code.deprecated_builtin_code()))
        };
        let name = builtin.variant_name().unwrap_or("an unnamed builtin");
        let inputs = op.inputs()?;
        if let Some(i) = inputs.iter().position(|t| t < 0) {
            return Some(format!(
                "does not support omitted optional inputs ({name}'s input {} is tensor -1, as \
                 the TFLite schema allows)",
                i + 1
            ));
        }
        let multiplier = op
            .builtin_options_as_depthwise_conv_2_doptions()
            .map_or(1, |o| o.depth_multiplier());
        if builtin == BuiltinOperator::DEPTHWISE_CONV_2D && multiplier != 1 {
            return Some(format!(
                "does not support DEPTHWISE_CONV_2D with a channel multiplier (here {multiplier})"
            ));
        }
    }
    None
}

/// tract-tflite's error in a line: the operator it stopped at and why. Its errors carry the
/// operator's full Debug dump, dozens of lines, which say less than the operator's name.
fn describe_error(e: &tract_onnx::prelude::TractError) -> String {
    let root = e.root_cause().to_string();
    let op = e
        .chain()
        .flat_map(|c| {
            let text = c.to_string();
            let names: Vec<String> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("builtin_code: "))
                .map(|n| n.trim_end_matches(',').to_string())
                .collect();
            names
        })
        .next();
    match op {
        Some(op) if root.starts_with("Unsupported: ") => {
            format!("does not support the operator {op}")
        }
        Some(op) => format!("cannot decode {op} as written ({})", first_line(&root)),
        None => format!("cannot decode this file ({})", first_line(&root)),
    }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .next()
        .unwrap_or("")
        .trim_end_matches([',', '{', ' '])
}
