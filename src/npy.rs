//! Reading and writing NumPy `.npy` files (format versions 1–3, little-endian, C order), for
//! `--input name=file.npy`, calibration data and test fixtures.

use crate::ir::{DType, Tensor};
use bytes::Bytes;

fn descr(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::BF16 => "<V2",
        DType::F64 => "<f8",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I32 => "<i4",
        DType::U32 => "<u4",
        DType::I64 => "<i8",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
    }
}

fn dtype_of(descr: &str) -> Option<DType> {
    let d = descr.trim_start_matches(['<', '|', '=']);
    Some(match d {
        "f4" => DType::F32,
        "f2" => DType::F16,
        "f8" => DType::F64,
        "i1" => DType::I8,
        "u1" => DType::U8,
        "i2" => DType::I16,
        "u2" => DType::U16,
        "i4" => DType::I32,
        "u4" => DType::U32,
        "i8" => DType::I64,
        "u8" => DType::U64,
        "b1" => DType::Bool,
        _ => return None,
    })
}

/// Parses `.npy` bytes.
pub fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "bad .npy header")?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        Some(
            header[i + key.len() + 2..]
                .trim_start()
                .trim_start_matches(':')
                .trim_start(),
        )
    };
    let d = field("descr").ok_or("no descr in .npy header")?;
    let d = d.trim_start_matches('\'');
    let d = &d[..d.find('\'').ok_or("bad descr")?];
    if d.starts_with('>') {
        return Err("big-endian .npy is not supported".into());
    }
    let dtype = dtype_of(d).ok_or_else(|| format!("unsupported .npy dtype '{d}'"))?;
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err("Fortran-order .npy is not supported".into());
    }
    let s = field("shape").ok_or("no shape in .npy header")?;
    let s = &s[s.find('(').ok_or("bad shape")? + 1..s.find(')').ok_or("bad shape")?];
    let shape = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<usize>()
                .map_err(|_| format!("bad dimension '{x}'"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = &bytes[start + hlen..];
    let n = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or("shape too large")?;
    if data.len() < n {
        return Err(format!("truncated .npy data: {} of {n} bytes", data.len()));
    }
    Tensor::new(dtype, shape, Bytes::copy_from_slice(&data[..n]))
}

pub fn read(path: &std::path::Path) -> Result<Tensor, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&b).map_err(|e| format!("{}: {e}", path.display()))
}

/// Encodes a tensor as `.npy` (version 1).
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    let shape = match t.shape.len() {
        1 => format!("({},)", t.shape[0]),
        _ => format!(
            "({})",
            t.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut h = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr(t.dtype)
    );
    while (h.len() + 11) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend_from_slice(&t.data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let t = Tensor::from_f32(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = to_bytes(&t);
        assert_eq!(parse(&b).unwrap(), t);
        assert!(parse(&b[..b.len() - 1]).is_err());
        assert!(parse(b"not numpy at all").is_err());
        let s = Tensor::from_i64(vec![], &[7]);
        assert_eq!(parse(&to_bytes(&s)).unwrap(), s);
    }
}
