//! A served model's signature: its inputs and outputs by name, element type and shape (a
//! dimension the model decides at run time is `None`, reported as -1), and the checks every
//! request's tensors pass against it before the engine sees them.

use super::status::{Reply, Status};
use crate::ir::{DType, Graph, Tensor};

#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Option<u64>>,
}

impl TensorSpec {
    /// The shape with -1 for run-time dimensions, as TF Serving and KServe report it.
    pub fn dims(&self) -> Vec<i64> {
        self.shape
            .iter()
            .map(|d| d.map_or(-1, |n| n as i64))
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Every input's and output's first dimension is one and the same run-time symbol (as a
    /// batch dimension is): requests can be merged along it.
    pub shared_first_symbol: bool,
}

impl Signature {
    pub fn of(g: &Graph) -> Signature {
        let spec = |v| TensorSpec {
            name: g.value(v).name.clone(),
            dtype: g.ty(v).dtype,
            shape: g.ty(v).shape.iter().map(|d| d.fixed()).collect(),
        };
        let firsts: Vec<Option<&crate::ir::Dim>> = g
            .inputs
            .iter()
            .chain(&g.outputs)
            .map(|&v| g.ty(v).shape.first())
            .collect();
        let shared_first_symbol = match firsts.first() {
            Some(Some(d)) => {
                let (c, syms) = d.factors();
                c == 1 && syms.len() == 1 && firsts.iter().all(|f| *f == Some(*d))
            }
            _ => false,
        };
        Signature {
            inputs: g.inputs.iter().map(|&v| spec(v)).collect(),
            outputs: g.outputs.iter().map(|&v| spec(v)).collect(),
            shared_first_symbol,
        }
    }

    pub fn input(&self, name: &str) -> Reply<(usize, &TensorSpec)> {
        self.inputs
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
            .ok_or_else(|| {
                Status::invalid(format!(
                    "the model has no input '{name}' (its inputs: {})",
                    names(&self.inputs)
                ))
            })
    }

    pub fn output(&self, name: &str) -> Reply<usize> {
        self.outputs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| {
                Status::invalid(format!(
                    "the model has no output '{name}' (its outputs: {})",
                    names(&self.outputs)
                ))
            })
    }

    /// Orders named tensors as the model's inputs, checking every one against its spec; every
    /// input must be given exactly once.
    pub fn arrange(&self, given: Vec<(String, Tensor)>) -> Reply<Vec<Tensor>> {
        let mut slots: Vec<Option<Tensor>> = vec![None; self.inputs.len()];
        for (name, t) in given {
            let (i, spec) = self.input(&name)?;
            check(spec, &t)?;
            if slots[i].replace(t).is_some() {
                return Err(Status::invalid(format!("input '{name}' is given twice")));
            }
        }
        let missing: Vec<&str> = self
            .inputs
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none())
            .map(|(spec, _)| spec.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Status::invalid(format!(
                "missing input(s): {} (the model's inputs: {})",
                missing.join(", "),
                names(&self.inputs)
            )));
        }
        Ok(slots.into_iter().flatten().collect())
    }
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("{} {}{:?}", s.name, s.dtype.name(), s.dims()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A request tensor fits its input: same element type, same rank, every fixed dimension equal.
pub fn check(spec: &TensorSpec, t: &Tensor) -> Reply<()> {
    if t.dtype != spec.dtype {
        return Err(Status::invalid(format!(
            "input '{}' must be {}, got {}",
            spec.name,
            spec.dtype.name(),
            t.dtype.name()
        )));
    }
    let fits = t.shape.len() == spec.shape.len()
        && spec
            .shape
            .iter()
            .zip(&t.shape)
            .all(|(d, &n)| d.is_none_or(|f| f == n as u64));
    if !fits {
        return Err(Status::invalid(format!(
            "input '{}' must have shape {:?} (-1: any size), got {:?}",
            spec.name,
            spec.dims(),
            t.shape
        )));
    }
    Ok(())
}

/// TensorFlow's `DataType` for an element type: its enum value and name.
pub fn tf_dtype(d: DType) -> (i32, &'static str) {
    match d {
        DType::F32 => (1, "DT_FLOAT"),
        DType::F64 => (2, "DT_DOUBLE"),
        DType::I32 => (3, "DT_INT32"),
        DType::U8 => (4, "DT_UINT8"),
        DType::I16 => (5, "DT_INT16"),
        DType::I8 => (6, "DT_INT8"),
        DType::I64 => (9, "DT_INT64"),
        DType::Bool => (10, "DT_BOOL"),
        DType::BF16 => (14, "DT_BFLOAT16"),
        DType::U16 => (17, "DT_UINT16"),
        DType::F16 => (19, "DT_HALF"),
        DType::U32 => (22, "DT_UINT32"),
        DType::U64 => (23, "DT_UINT64"),
    }
}

pub fn from_tf_dtype(v: i32) -> Option<DType> {
    crate::ir::tensor::ALL_DTYPES
        .iter()
        .copied()
        .find(|&d| tf_dtype(d).0 == v)
}

/// KServe v2's datatype name for an element type.
pub fn kserve_dtype(d: DType) -> &'static str {
    match d {
        DType::F32 => "FP32",
        DType::F64 => "FP64",
        DType::F16 => "FP16",
        DType::BF16 => "BF16",
        DType::I8 => "INT8",
        DType::I16 => "INT16",
        DType::I32 => "INT32",
        DType::I64 => "INT64",
        DType::U8 => "UINT8",
        DType::U16 => "UINT16",
        DType::U32 => "UINT32",
        DType::U64 => "UINT64",
        DType::Bool => "BOOL",
    }
}

pub fn from_kserve_dtype(s: &str) -> Option<DType> {
    crate::ir::tensor::ALL_DTYPES
        .iter()
        .copied()
        .find(|&d| kserve_dtype(d) == s)
}

/// The most elements one request value may fill from a single given value (a TensorProto
/// with one `float_val` for a whole shape): bounded, so a small request cannot ask for a huge
/// allocation.
pub const MAX_FILL: usize = 64 << 20;
