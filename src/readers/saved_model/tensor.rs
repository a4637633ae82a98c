//! TF `TensorProto` constants and `NodeDef` attributes, as the op handlers see them.

use super::bundle::{dtype_from_tf, tf_dtype_name};
use crate::ir::{DType, Tensor, ValueId};
use crate::readers::builder::{unsupported, NodeError, NodeResult};
use bytes::Bytes;
use tract_tensorflow::tfpb::tensorflow::{attr_value, AttrValue, NodeDef, TensorProto};

/// A node being converted: its definition, its (scoped) name and its tensor inputs.
pub struct TfNode<'a> {
    pub def: &'a NodeDef,
    pub name: String,
    pub inputs: Vec<ValueId>,
}

impl TfNode<'_> {
    pub fn op(&self) -> &str {
        &self.def.op
    }
    pub fn input(&self, i: usize) -> NodeResult<ValueId> {
        self.inputs
            .get(i)
            .copied()
            .ok_or_else(|| NodeError::Invalid(format!("missing input #{i}")))
    }
    fn attr(&self, name: &str) -> Option<&attr_value::Value> {
        self.def.attr.get(name).and_then(|a| a.value.as_ref())
    }
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.attr(name) {
            Some(attr_value::Value::I(i)) => *i,
            _ => default,
        }
    }
    pub fn float(&self, name: &str, default: f32) -> f32 {
        match self.attr(name) {
            Some(attr_value::Value::F(f)) => *f,
            _ => default,
        }
    }
    pub fn bool(&self, name: &str, default: bool) -> bool {
        match self.attr(name) {
            Some(attr_value::Value::B(b)) => *b,
            _ => default,
        }
    }
    pub fn string(&self, name: &str, default: &str) -> String {
        match self.attr(name) {
            Some(attr_value::Value::S(s)) => String::from_utf8_lossy(s).into_owned(),
            _ => default.to_string(),
        }
    }
    /// A list of strings attribute (`fused_ops`), empty when absent.
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.attr(name) {
            Some(attr_value::Value::List(l)) => {
                l.s.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            }
            _ => vec![],
        }
    }
    /// A list of floats attribute (Bucketize's `boundaries`), empty when absent.
    pub fn floats(&self, name: &str) -> Vec<f32> {
        match self.attr(name) {
            Some(attr_value::Value::List(l)) => l.f.clone(),
            _ => vec![],
        }
    }
    pub fn ints(&self, name: &str) -> Vec<i64> {
        match self.attr(name) {
            Some(attr_value::Value::List(l)) => l.i.clone(),
            _ => vec![],
        }
    }
    pub fn dtype(&self, name: &str) -> Option<i32> {
        match self.attr(name) {
            Some(attr_value::Value::Type(t)) => Some(*t),
            _ => None,
        }
    }
    /// The IR type of a type attribute (`DstT`, `out_type`…), refusing what the IR lacks.
    pub fn ir_dtype(&self, name: &str, default: DType) -> NodeResult<DType> {
        match self.dtype(name) {
            None => Ok(default),
            Some(t) => dtype_from_tf(t)
                .map_or_else(|| unsupported(format!("{name} = {}", tf_dtype_name(t))), Ok),
        }
    }
    /// `data_format` must be channels-last (what Keras and TF on CPU write).
    pub fn require_nhwc(&self) -> NodeResult<()> {
        let f = self.string("data_format", "NHWC");
        if f == "NHWC" || f == "NDHWC" || f == "NWC" {
            Ok(())
        } else {
            unsupported(format!("data_format {f}"))
        }
    }
    pub fn tensor_attr(&self, name: &str) -> Option<&TensorProto> {
        match self.attr(name) {
            Some(attr_value::Value::Tensor(t)) => Some(t),
            _ => None,
        }
    }
}

/// The function a call node invokes (`f` attribute of (Stateful)PartitionedCall).
pub fn func_attr(def: &NodeDef, name: &str) -> Option<String> {
    match def
        .attr
        .get(name)
        .and_then(|a: &AttrValue| a.value.as_ref())
    {
        Some(attr_value::Value::Func(f)) => Some(f.name.clone()),
        _ => None,
    }
}

/// A `TensorProto` as a constant: `tensor_content` bytes when present, else the typed value
/// list, where fewer values than elements repeat the last one (TF's compact form for fills).
pub fn tensor_from_proto(t: &TensorProto) -> Result<Tensor, String> {
    let dtype = dtype_from_tf(t.dtype).ok_or_else(|| {
        format!(
            "constant of type {} is not supported",
            tf_dtype_name(t.dtype)
        )
    })?;
    let shape: Vec<usize> = match &t.tensor_shape {
        Some(s) => s
            .dim
            .iter()
            .map(|d| usize::try_from(d.size).map_err(|_| format!("bad dimension {}", d.size)))
            .collect::<Result<_, _>>()?,
        None => vec![],
    };
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("constant too large")?;
    if !t.tensor_content.is_empty() {
        return Tensor::new(dtype, shape, Bytes::from(t.tensor_content.clone()));
    }
    fn fill<T: Copy>(v: &[T], n: usize) -> Result<Vec<T>, String> {
        match v.last() {
            None if n == 0 => Ok(vec![]),
            None => Err("constant has no values".into()),
            Some(&last) => Ok((0..n).map(|i| v.get(i).copied().unwrap_or(last)).collect()),
        }
    }
    let bytes: Vec<u8> = match dtype {
        DType::F32 => fill(&t.float_val, n)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => fill(&t.double_val, n)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I64 => fill(&t.int64_val, n)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::Bool => fill(&t.bool_val, n)?.iter().map(|&b| b as u8).collect(),
        DType::U32 => fill(&t.uint32_val, n)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::U64 => fill(&t.uint64_val, n)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 | DType::BF16 | DType::I16 | DType::U16 => {
            let src = if matches!(dtype, DType::F16 | DType::BF16) {
                &t.half_val
            } else {
                &t.int_val
            };
            fill(src, n)?
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect()
        }
        DType::I32 => fill(&t.int_val, n)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I8 | DType::U8 => fill(&t.int_val, n)?.iter().map(|&v| v as u8).collect(),
    };
    Tensor::new(dtype, shape, Bytes::from(bytes))
}
