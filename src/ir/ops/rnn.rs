//! Recurrent layers in the ONNX LSTM-14 / GRU-14 form: gates packed `iofc` (LSTM) and `zrh`
//! (GRU), weights `[dirs, gates*hidden, in]`, optional inputs listed in `optional`.

use super::Inputs;
use crate::ir::{Dim, TensorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RnnDirection {
    Forward,
    Reverse,
    Bidirectional,
}

impl RnnDirection {
    pub fn count(self) -> u64 {
        if self == RnnDirection::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// The optional inputs after X, W, R, in ONNX order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RnnInput {
    Bias,
    SequenceLens,
    InitialH,
    InitialC,
    Peepholes,
}

impl RnnInput {
    /// The optional inputs of an LSTM (or GRU), in ONNX positional order after X, W, R.
    pub fn slots(lstm: bool) -> &'static [RnnInput] {
        const LSTM: [RnnInput; 5] = [
            RnnInput::Bias,
            RnnInput::SequenceLens,
            RnnInput::InitialH,
            RnnInput::InitialC,
            RnnInput::Peepholes,
        ];
        if lstm {
            &LSTM
        } else {
            &LSTM[..3]
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rnn {
    pub direction: RnnDirection,
    pub hidden_size: usize,
    /// Activation names as in ONNX (`Sigmoid`, `Tanh`, …); empty means the defaults.
    pub activations: Vec<String>,
    /// ONNX's `clip`: bounds the gates' pre-activations.
    pub clip: Option<f32>,
    /// LSTM only (TFLite's `cell_clip`): the cell state is clipped to `±cell_clip` after each
    /// update, before the output gate and the next step read it. Unlike `clip` it has no ONNX
    /// attribute: writers without a builtin for it unroll the layer (`passes::rnn`).
    pub cell_clip: Option<f32>,
    /// GRU only.
    pub linear_before_reset: bool,
    /// LSTM only: couple the input and forget gates.
    pub input_forget: bool,
    /// `true` when X/Y are `[batch, seq, …]` (ONNX layout=1).
    pub batch_major: bool,
    /// Which optional inputs follow X, W, R, in order.
    pub optional: Vec<RnnInput>,
}

pub fn infer_rnn(r: &Rnn, inputs: &Inputs, lstm: bool) -> Result<Vec<TensorType>, String> {
    inputs.expect_count(3 + r.optional.len(), 3 + r.optional.len())?;
    let x = inputs.ty(0)?;
    if x.rank() != 3 {
        return Err(format!("input must be rank 3, got {x}"));
    }
    let (seq, batch) = if r.batch_major {
        (&x.shape[1], &x.shape[0])
    } else {
        (&x.shape[0], &x.shape[1])
    };
    let dirs = Dim::Fixed(r.direction.count());
    let h = Dim::Fixed(r.hidden_size as u64);
    let y = if r.batch_major {
        vec![batch.clone(), seq.clone(), dirs.clone(), h.clone()]
    } else {
        vec![seq.clone(), dirs.clone(), batch.clone(), h.clone()]
    };
    let state = if r.batch_major {
        vec![batch.clone(), dirs, h]
    } else {
        vec![dirs, batch.clone(), h]
    };
    let mut out = vec![
        TensorType::new(x.dtype, y),
        TensorType::new(x.dtype, state.clone()),
    ];
    if lstm {
        out.push(TensorType::new(x.dtype, state));
    }
    Ok(out)
}
