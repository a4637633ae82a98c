//! COMPLEX64 values, which the IR has no type for: RFFT2D's result is kept inside the reader as
//! its real and imaginary parts (`tf_common::fft`), and only consumers that take a complex value
//! apart accept it: COMPLEX_ABS, REAL and IMAG, and the data-movement builtins the converter puts
//! between RFFT2D and them (`tf.signal.rfft` of a vector is RESHAPE → RFFT2D → RESHAPE), applied
//! to each part. Any other consumer, and a complex graph output, is refused by name.

use super::import::{Bound, Importer};
use super::ops::{self, Node};
use crate::error::Unsupported;
use crate::ir::ValueId;
use crate::readers::builder::{unsupported, NodeError, NodeResult};
use crate::readers::tf_common::fft::{self, Complex};
use tract_tflite::tflite::{self as tfl, BuiltinOperator as B};

/// Builtins that move elements without combining them: each part moves the same way.
fn moves_elements(code: B) -> bool {
    matches!(
        code,
        B::RESHAPE | B::SQUEEZE | B::EXPAND_DIMS | B::TRANSPOSE | B::SLICE | B::STRIDED_SLICE
    )
}

impl<'a> Importer<'a> {
    /// Whether the operator makes or reads a complex value (and so is imported here).
    pub(super) fn takes_complex(
        &mut self,
        op: &tfl::Operator<'a>,
        code: B,
    ) -> Result<bool, String> {
        if matches!(code, B::RFFT2D | B::COMPLEX_ABS | B::REAL | B::IMAG) {
            return Ok(true);
        }
        for i in op
            .inputs()
            .map(|v| v.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if let Some(Bound::Complex(_) | Bound::Resource(_)) = self.input_value(i)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Imports an operator that makes or reads a complex value.
    pub(super) fn complex_op(
        &mut self,
        code: B,
        op: tfl::Operator<'a>,
        name: &str,
        out_idx: &[usize],
    ) -> NodeResult<()> {
        let ids: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
        let mut inputs = Vec::with_capacity(ids.len());
        for &i in &ids {
            match self.input_value(i).map_err(NodeError::Invalid)? {
                Some(Bound::Poisoned) => {
                    for &o in out_idx {
                        self.bound[o] = Some(Bound::Poisoned);
                    }
                    return Ok(());
                }
                Some(Bound::Resource(_)) => {
                    return unsupported("a variable handle read by anything but READ_VARIABLE")
                }
                b => inputs.push(b),
            }
        }
        let [out] = out_idx else {
            return Err(NodeError::Invalid(format!(
                "{} outputs, expected 1",
                out_idx.len()
            )));
        };
        let part = |k: usize| match inputs.get(k).copied().flatten() {
            Some(Bound::Complex(z)) => Ok(z),
            _ => unsupported(format!("input {k} is not complex")),
        };
        let real = |k: usize| match inputs.get(k).copied().flatten() {
            Some(Bound::Value(v)) => Ok(v),
            Some(Bound::Complex(_)) => unsupported(format!(
                "a complex input {k} (only COMPLEX_ABS, REAL, IMAG and data movement take one)"
            )),
            _ => Err(NodeError::Invalid(format!("input {k} is missing"))),
        };
        let value = match code {
            B::RFFT2D => {
                let len = self.b.const_ints(real(1)?).ok_or_else(|| {
                    NodeError::Unsupported("fft_length computed at run time".into())
                })?;
                let len: [usize; 2] = match len[..] {
                    [h, w] => [dim(h)?, dim(w)?],
                    _ => return Err(NodeError::Invalid("fft_length is not 2 values".into())),
                };
                let z = fft::rfft2d(&mut self.b, name, real(0)?, len)?;
                self.bound[*out] = Some(Bound::Complex(z));
                return Ok(());
            }
            B::COMPLEX_ABS => fft::abs(&mut self.b, name, part(0)?)?,
            B::REAL => part(0)?.re,
            B::IMAG => part(0)?.im,
            code if moves_elements(code) => {
                let z = part(0)?;
                let rest = (1..inputs.len())
                    .map(|k| real(k).map(Some))
                    .collect::<NodeResult<Vec<_>>>()?;
                let re = self.move_part(code, op, &format!("{name}/real"), z.re, &rest)?;
                let im = self.move_part(code, op, &format!("{name}/imag"), z.im, &rest)?;
                self.bound[*out] = Some(Bound::Complex(Complex { re, im }));
                return Ok(());
            }
            _ => {
                return unsupported(
                    "a complex input (RFFT2D's result): only COMPLEX_ABS, REAL, IMAG and data \
                     movement take one",
                )
            }
        };
        self.bind_outputs(out_idx, &[value])
    }

    /// One part of a complex value through a data-movement builtin's own handler.
    fn move_part(
        &mut self,
        code: B,
        op: tfl::Operator<'a>,
        name: &str,
        x: ValueId,
        rest: &[Option<ValueId>],
    ) -> NodeResult<ValueId> {
        let handler = ops::handler(code)
            .ok_or_else(|| NodeError::Invalid("no handler for a data-movement builtin".into()))?;
        let mut inputs = vec![Some(x)];
        inputs.extend_from_slice(rest);
        let node = Node {
            name: name.to_string(),
            code,
            op,
            inputs,
            out_dtypes: vec![Some(crate::ir::DType::F32)],
        };
        let out = handler(&mut self.b, &node)?;
        out.first()
            .copied()
            .ok_or_else(|| NodeError::Invalid("no output".into()))
    }

    /// A complex graph output has no IR type: refused, named.
    pub(super) fn refuse_complex_outputs(&mut self) {
        let outputs: Vec<i32> = self.subgraph_outputs();
        for i in outputs {
            let Ok(idx) = usize::try_from(i) else {
                continue;
            };
            if let Some(Some(Bound::Complex(_))) = self.bound.get(idx) {
                self.b.unsupported.push(Unsupported {
                    op: "COMPLEX64 output".into(),
                    node: (self.names.get(&idx).cloned()).unwrap_or_else(|| self.tensor_name(idx)),
                    reason: "the IR has no complex type: take the result apart (COMPLEX_ABS, \
                             REAL, IMAG) inside the model"
                        .into(),
                });
            }
        }
    }
}

fn dim(v: i64) -> NodeResult<usize> {
    usize::try_from(v).map_err(|_| NodeError::Invalid(format!("fft_length {v}")))
}
