//! Quantization parameters carried by a value.
//!
//! `real = scale * (q - zero_point)`. Per-tensor when `axis` is `None` (one scale and one
//! zero point), per-channel along `axis` otherwise (one pair per channel).

#[derive(Clone, Debug, PartialEq)]
pub struct QuantParams {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: Option<usize>,
}

impl QuantParams {
    pub fn per_tensor(scale: f32, zero_point: i64) -> QuantParams {
        QuantParams {
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: None,
        }
    }

    /// Checks the parameter counts against the value's shape.
    pub fn check(&self, shape: &[super::Dim]) -> Result<(), String> {
        if self.scale.len() != self.zero_point.len() {
            return Err(format!(
                "{} scales but {} zero points",
                self.scale.len(),
                self.zero_point.len()
            ));
        }
        match self.axis {
            None if self.scale.len() != 1 => Err(format!(
                "per-tensor quantization with {} scales",
                self.scale.len()
            )),
            Some(a) if a >= shape.len() => {
                Err(format!("quantization axis {a} out of rank {}", shape.len()))
            }
            Some(a) => match shape[a].fixed() {
                Some(n) if n as usize != self.scale.len() => Err(format!(
                    "{} scales for {} channels on axis {a}",
                    self.scale.len(),
                    n
                )),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Dim;

    #[test]
    fn per_channel_count_must_match_axis() {
        let q = QuantParams {
            scale: vec![0.1, 0.2],
            zero_point: vec![0, 0],
            axis: Some(0),
        };
        assert!(q.check(&[Dim::Fixed(2), Dim::Fixed(3)]).is_ok());
        assert!(q.check(&[Dim::Fixed(3), Dim::Fixed(2)]).is_err());
        assert!(q.check(&[]).is_err());
    }
}
