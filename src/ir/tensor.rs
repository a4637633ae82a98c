//! Element types, dimensions, shapes and constant tensors.
//!
//! Constant bytes are held in a [`bytes::Bytes`], so a constant read from a memory-mapped
//! file shares the mapping and a constant cloned between values shares one buffer: the
//! weights of a model are never copied while they sit in the IR.

use bytes::Bytes;
use std::fmt;

/// Element type of a value. Bytes are always little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }
    pub fn is_int(self) -> bool {
        !self.is_float() && self != DType::Bool
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::Bool => "bool",
        }
    }
    pub fn from_name(s: &str) -> Option<DType> {
        ALL_DTYPES.iter().copied().find(|d| d.name() == s)
    }
}

pub const ALL_DTYPES: [DType; 13] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I32,
    DType::U32,
    DType::I64,
    DType::U64,
    DType::Bool,
];

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension: a fixed size or a named symbol (`batch`), equal wherever the name repeats.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Fixed(u64),
    Sym(String),
}

impl Dim {
    pub fn fixed(&self) -> Option<u64> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
    pub fn is_fixed(&self) -> bool {
        matches!(self, Dim::Fixed(_))
    }

    /// The dimension as `coefficient × symbols`. A symbol's name may itself be a product
    /// (`batch*seq`, `4*batch`): flattening a symbolic shape makes such dimensions, and keeping
    /// them exact lets a later reshape divide them out again.
    pub fn factors(&self) -> (u64, Vec<String>) {
        match self {
            Dim::Fixed(n) => (*n, vec![]),
            Dim::Sym(s) => {
                let mut c = 1u64;
                let mut syms = Vec::new();
                for part in s.split('*') {
                    match part.parse::<u64>() {
                        Ok(n) => c = c.saturating_mul(n),
                        Err(_) => syms.push(part.to_string()),
                    }
                }
                (c, syms)
            }
        }
    }

    /// The canonical dimension for `coefficient × symbols` (symbols sorted, `*`-joined).
    pub fn from_factors(c: u64, mut syms: Vec<String>) -> Dim {
        if syms.is_empty() || c == 0 {
            return Dim::Fixed(c);
        }
        syms.sort();
        let mut parts: Vec<String> = if c == 1 { vec![] } else { vec![c.to_string()] };
        parts.extend(syms);
        Dim::Sym(parts.join("*"))
    }

    /// The product of `dims`, exact even when symbolic.
    pub fn product(dims: &[Dim]) -> Dim {
        let (mut c, mut syms) = (1u64, Vec::new());
        for d in dims {
            let (k, s) = d.factors();
            c = c.saturating_mul(k);
            syms.extend(s);
        }
        Dim::from_factors(c, syms)
    }

    /// `self / other` when it divides exactly (every symbol of `other` appears in `self`).
    pub fn divide(&self, other: &Dim) -> Option<Dim> {
        let (c, mut syms) = self.factors();
        let (k, other_syms) = other.factors();
        if k == 0 || !c.is_multiple_of(k) {
            return None;
        }
        for s in other_syms {
            let p = syms.iter().position(|x| *x == s)?;
            syms.remove(p);
        }
        Some(Dim::from_factors(c / k, syms))
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Dim {
        Dim::Fixed(n)
    }
}
impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Fixed(n as u64)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// A shape of known rank.
pub type Shape = Vec<Dim>;

pub fn fixed_shape(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Fixed(d as u64)).collect()
}

/// The fixed sizes of a shape, or `None` when a dimension is symbolic.
pub fn shape_fixed(shape: &[Dim]) -> Option<Vec<usize>> {
    shape
        .iter()
        .map(|d| d.fixed().map(|n| n as usize))
        .collect()
}

pub fn shape_text(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Type of a value: element type and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType { dtype, shape }
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}{}", self.dtype, shape_text(&self.shape))
    }
}

/// A constant: element type, fixed shape and little-endian bytes shared with their source.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Bytes,
}

impl Tensor {
    /// Builds a tensor, checking that the byte count matches the shape.
    pub fn new(dtype: DType, shape: Vec<usize>, data: Bytes) -> Result<Tensor, String> {
        let want = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("shape {shape:?} is too large"))?;
        if data.len() != want {
            return Err(format!(
                "{dtype}{:?} needs {want} bytes, found {}",
                shape,
                data.len()
            ));
        }
        Ok(Tensor { dtype, shape, data })
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype, fixed_shape(&self.shape))
    }
    pub fn from_f32(shape: Vec<usize>, v: &[f32]) -> Tensor {
        Tensor {
            dtype: DType::F32,
            shape,
            data: Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
        }
    }
    pub fn from_i64(shape: Vec<usize>, v: &[i64]) -> Tensor {
        Tensor {
            dtype: DType::I64,
            shape,
            data: Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
        }
    }
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor::from_f32(vec![], &[v])
    }
    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor::from_i64(vec![], &[v])
    }
    /// A tensor of `shape` filled with the bytes of one element.
    pub fn filled(dtype: DType, shape: Vec<usize>, element: &[u8]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor {
            dtype,
            shape,
            data: Bytes::from(element.repeat(n)),
        }
    }
    pub fn reshaped(&self, shape: Vec<usize>) -> Tensor {
        Tensor {
            dtype: self.dtype,
            shape,
            data: self.data.clone(),
        }
    }

    /// Elements as i64, for integer and bool tensors (shape arithmetic, indices, axes).
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        let b = &self.data[..];
        Some(match self.dtype {
            DType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(arr(c)))
                .collect(),
            DType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(arr(c)) as i64)
                .collect(),
            DType::U32 => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(arr(c)) as i64)
                .collect(),
            DType::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes(arr(c)) as i64)
                .collect(),
            DType::U16 => b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes(arr(c)) as i64)
                .collect(),
            DType::I8 => b.iter().map(|&x| x as i8 as i64).collect(),
            DType::U8 | DType::Bool => b.iter().map(|&x| x as i64).collect(),
            DType::U64 => b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(arr(c)) as i64)
                .collect(),
            _ => return None,
        })
    }

    /// Elements as f64, for every type (used by constant folding and statistics).
    pub fn to_f64s(&self) -> Vec<f64> {
        let b = &self.data[..];
        match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(arr(c)) as f64)
                .collect(),
            DType::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(arr(c)))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes(arr(c)).to_f64())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes(arr(c)).to_f64())
                .collect(),
            _ => self
                .to_i64s()
                .unwrap_or_default()
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        }
    }

    /// Builds a tensor of `dtype` from f64 elements (rounding/saturating as a cast would).
    pub fn from_f64s(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Tensor {
        let mut out = Vec::with_capacity(v.len() * dtype.size());
        for &x in v {
            match dtype {
                DType::F32 => out.extend((x as f32).to_le_bytes()),
                DType::F64 => out.extend(x.to_le_bytes()),
                DType::F16 => out.extend(half::f16::from_f64(x).to_le_bytes()),
                DType::BF16 => out.extend(half::bf16::from_f64(x).to_le_bytes()),
                DType::I64 => out.extend((x as i64).to_le_bytes()),
                DType::U64 => out.extend((x as u64).to_le_bytes()),
                DType::I32 => out.extend((x as i32).to_le_bytes()),
                DType::U32 => out.extend((x as u32).to_le_bytes()),
                DType::I16 => out.extend((x as i16).to_le_bytes()),
                DType::U16 => out.extend((x as u16).to_le_bytes()),
                DType::I8 => out.push(x as i8 as u8),
                DType::U8 => out.push(x as u8),
                DType::Bool => out.push((x != 0.0) as u8),
            }
        }
        Tensor {
            dtype,
            shape,
            data: Bytes::from(out),
        }
    }

    /// Builds an integer/bool tensor from i64 elements without going through f64.
    pub fn from_i64s(dtype: DType, shape: Vec<usize>, v: &[i64]) -> Tensor {
        if dtype.is_float() {
            let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            return Tensor::from_f64s(dtype, shape, &f);
        }
        let mut out = Vec::with_capacity(v.len() * dtype.size());
        for &x in v {
            match dtype {
                DType::I64 | DType::U64 => out.extend(x.to_le_bytes()),
                DType::I32 | DType::U32 => out.extend((x as i32).to_le_bytes()),
                DType::I16 | DType::U16 => out.extend((x as i16).to_le_bytes()),
                DType::Bool => out.push((x != 0) as u8),
                _ => out.push(x as u8),
            }
        }
        Tensor {
            dtype,
            shape,
            data: Bytes::from(out),
        }
    }
}

fn arr<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(c);
    a
}

#[cfg(test)]
mod tests {
    use super::Dim;

    #[test]
    fn symbolic_products_divide_back_exactly() {
        let bt = Dim::product(&[
            Dim::Sym("batch".into()),
            Dim::Sym("seq".into()),
            Dim::Fixed(4),
        ]);
        assert_eq!(bt, Dim::Sym("4*batch*seq".into()));
        assert_eq!(
            bt.divide(&Dim::Fixed(4)),
            Some(Dim::Sym("batch*seq".into()))
        );
        let seq = bt.divide(&Dim::product(&[Dim::Sym("batch".into()), Dim::Fixed(2)]));
        assert_eq!(seq, Some(Dim::Sym("2*seq".into())));
        assert_eq!(bt.divide(&Dim::Sym("other".into())), None);
        assert_eq!(
            Dim::product(&[Dim::Fixed(3), Dim::Fixed(5)]),
            Dim::Fixed(15)
        );
    }
}
