//! Activations as compositions of primitive ops, written once for every place that needs one:
//! the ONNX writer (opsets older than the op: Gelu < 20, Mish < 18), the TF.js graph writer (TF
//! has no GELU kernel) and the float lowering for TFLite and TF.js (`lower.rs`: Mish). Each
//! caller implements [`Prims`] over its own node format; the formula, the order the pieces are
//! made in and the constants are here, so every output follows one definition.
//!
//! Not shared, because the formats' forms differ and unifying them would change what users get:
//! HardSwish (ONNX before opset 14: `x · HardSigmoid(x; 1/6, 1/2)`; TF.js: `x · Relu6(x + 3) / 6`)
//! and LayerNorm (ONNX before opset 17: `(x - mean) / Sqrt(var + eps)`; the lowering: `… · Rsqrt`).

/// One-input primitives a decomposition is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Square,
    Tanh,
    Erf,
    Softplus,
}

/// Two-input primitives a decomposition is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
}

/// The tag of the step whose value is the decomposition's result: the caller writes it to the
/// decomposed node's own output.
pub const RESULT: &str = "";

/// A node format the decompositions are built in. `tag` names a step (formats that name their
/// nodes and constants after the step use it); [`RESULT`] marks the last one.
pub trait Prims {
    type Value: Clone;
    /// A scalar constant of the decomposed node's element type.
    fn constant(&mut self, tag: &str, v: f64) -> Result<Self::Value, String>;
    fn unary(&mut self, tag: &str, op: Unary, x: Self::Value) -> Result<Self::Value, String>;
    fn binary(
        &mut self,
        tag: &str,
        op: Binary,
        a: Self::Value,
        b: Self::Value,
    ) -> Result<Self::Value, String>;
}

/// GELU: `0.5·x·(1 + erf(x/√2))`, or with `tanh_approx`
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu<P: Prims>(p: &mut P, x: P::Value, tanh_approx: bool) -> Result<P::Value, String> {
    let inner = if tanh_approx {
        let x2 = p.unary("x2", Unary::Square, x.clone())?;
        let x3 = p.binary("x3", Binary::Mul, x2, x.clone())?;
        let c = p.constant("c", 0.044715)?;
        let cx3 = p.binary("cx3", Binary::Mul, x3, c)?;
        let s = p.binary("sum", Binary::Add, x.clone(), cx3)?;
        let k = p.constant("k", (2.0 / std::f64::consts::PI).sqrt())?;
        let ks = p.binary("scaled", Binary::Mul, s, k)?;
        p.unary("tanh", Unary::Tanh, ks)?
    } else {
        let k = p.constant("rsqrt2", std::f64::consts::FRAC_1_SQRT_2)?;
        let xs = p.binary("scaled", Binary::Mul, x.clone(), k)?;
        p.unary("erf", Unary::Erf, xs)?
    };
    let one = p.constant("one", 1.0)?;
    let sum = p.binary("one_plus", Binary::Add, inner, one)?;
    let half = p.constant("half", 0.5)?;
    let hx = p.binary("half_x", Binary::Mul, x, half)?;
    p.binary(RESULT, Binary::Mul, hx, sum)
}

/// Mish: `x · tanh(softplus(x))`.
pub fn mish<P: Prims>(p: &mut P, x: P::Value) -> Result<P::Value, String> {
    let sp = p.unary("softplus", Unary::Softplus, x.clone())?;
    let t = p.unary("tanh", Unary::Tanh, sp)?;
    p.binary(RESULT, Binary::Mul, x, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates a decomposition on one number, to check the formulas themselves.
    struct Eval;

    impl Prims for Eval {
        type Value = f64;
        fn constant(&mut self, _: &str, v: f64) -> Result<f64, String> {
            Ok(v)
        }
        fn unary(&mut self, _: &str, op: Unary, x: f64) -> Result<f64, String> {
            Ok(match op {
                Unary::Square => x * x,
                Unary::Tanh => x.tanh(),
                Unary::Erf => erf(x),
                Unary::Softplus => x.exp().ln_1p(),
            })
        }
        fn binary(&mut self, _: &str, op: Binary, a: f64, b: f64) -> Result<f64, String> {
            Ok(match op {
                Binary::Add => a + b,
                Binary::Mul => a * b,
            })
        }
    }

    /// erf by its Maclaurin series (ample for |x| ≤ 3).
    fn erf(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..60 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn formulas_match_reference_values() {
        // torch.nn.functional.gelu / mish at 1.0 and -0.5.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(gelu(&mut Eval, 1.0, false).unwrap(), 0.841_344_7));
        assert!(close(gelu(&mut Eval, -0.5, false).unwrap(), -0.154_268_7));
        assert!(close(gelu(&mut Eval, 1.0, true).unwrap(), 0.841_191_9));
        assert!(close(mish(&mut Eval, 1.0).unwrap(), 0.865_098_4));
        assert!(close(mish(&mut Eval, -0.5).unwrap(), -0.220_743_8));
    }
}
