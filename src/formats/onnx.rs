//! ONNX knowledge both the reader and the writer need: the element-type table between ONNX
//! `TensorProto.DataType` codes and IR [`DType`]s.

use crate::ir::DType;
use tract_onnx::pb::tensor_proto::DataType;

/// The IR element type of an ONNX type code, if the IR has one.
pub fn dtype_from_onnx(code: i32) -> Option<DType> {
    Some(match DataType::try_from(code).ok()? {
        DataType::Float => DType::F32,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Double => DType::F64,
        DataType::Int8 => DType::I8,
        DataType::Uint8 => DType::U8,
        DataType::Int16 => DType::I16,
        DataType::Uint16 => DType::U16,
        DataType::Int32 => DType::I32,
        DataType::Uint32 => DType::U32,
        DataType::Int64 => DType::I64,
        DataType::Uint64 => DType::U64,
        DataType::Bool => DType::Bool,
        _ => return None,
    })
}

/// Why an ONNX element type cannot be read (float8, int4, string, complex…), if it cannot.
pub fn unsupported_type(code: i32) -> Option<String> {
    if dtype_from_onnx(code).is_some() {
        return None;
    }
    let name = DataType::try_from(code)
        .map_or_else(|_| format!("#{code}"), |d| d.as_str_name().to_lowercase());
    Some(format!("element type {name} is not supported"))
}

/// The ONNX type code of an IR element type (the inverse of [`dtype_from_onnx`]).
pub fn onnx_code(dtype: DType) -> i32 {
    (match dtype {
        DType::F32 => DataType::Float,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::F64 => DataType::Double,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::I16 => DataType::Int16,
        DType::U16 => DataType::Uint16,
        DType::I32 => DataType::Int32,
        DType::U32 => DataType::Uint32,
        DType::I64 => DataType::Int64,
        DType::U64 => DataType::Uint64,
        DType::Bool => DataType::Bool,
    }) as i32
}
