//! TensorFlow's tensor-bundle checkpoint format (a SavedModel's `variables/`): the index table
//! ([`table`]), the masked CRC32C its blocks and tensors carry ([`crc`]), and the `DataType`
//! codes of its entries. The SavedModel reader and writer both use it.

pub mod crc;
pub mod table;

use crate::ir::DType;

/// `DT_STRING`, the element type of the object-graph entry.
pub const DT_STRING: i32 = 7;

/// A TF `DataType` enum value as an IR element type.
pub fn dtype_from_tf(dt: i32) -> Option<DType> {
    Some(match dt {
        1 => DType::F32,
        2 => DType::F64,
        3 => DType::I32,
        4 => DType::U8,
        5 => DType::I16,
        6 => DType::I8,
        9 => DType::I64,
        10 => DType::Bool,
        14 => DType::BF16,
        17 => DType::U16,
        19 => DType::F16,
        22 => DType::U32,
        23 => DType::U64,
        _ => return None,
    })
}

/// A readable name of a TF `DataType` value, for messages.
pub fn tf_dtype_name(dt: i32) -> String {
    tract_tensorflow::tfpb::tensorflow::DataType::try_from(dt)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("dtype {dt}"))
}

/// The TF `DataType` enum value of an IR element type.
pub fn dtype_to_tf(d: DType) -> i32 {
    match d {
        DType::F32 => 1,
        DType::F64 => 2,
        DType::I32 => 3,
        DType::U8 => 4,
        DType::I16 => 5,
        DType::I8 => 6,
        DType::I64 => 9,
        DType::Bool => 10,
        DType::BF16 => 14,
        DType::U16 => 17,
        DType::F16 => 19,
        DType::U32 => 22,
        DType::U64 => 23,
    }
}
