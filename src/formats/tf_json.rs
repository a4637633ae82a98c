//! A TF.js graph model's `modelTopology`: TF's `GraphDef` in protobuf's JSON mapping (as
//! `MessageToDict` writes it: camelCase keys, 64-bit integers as strings, bytes in base64),
//! turned back into the prost `GraphDef` the SavedModel reader imports. `Const` nodes carry only
//! dtype and shape; their values are the weights named like the node.
//!
//! Shared: the TF.js reader reads model.json through it; the SavedModel writer turns the
//! GraphDef `writers::tf_graph` builds (in this JSON form) into protos through it.

use crate::ir::Tensor;
use serde_json::{Map, Value};
use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::{
    attr_value, op_def, tensor_info, tensor_shape_proto, AttrValue, DataType, FunctionDef,
    FunctionDefLibrary, GraphDef, NameAttrList, NodeDef, OpDef, SignatureDef, TensorInfo,
    TensorProto, TensorShapeProto,
};

type R<T> = Result<T, String>;

/// The field under its JSON name or its proto name.
fn field<'a>(v: &'a Value, json: &str, proto: &str) -> Option<&'a Value> {
    v.get(json).or_else(|| v.get(proto))
}

fn list<'a>(v: &'a Value, json: &str, proto: &str) -> &'a [Value] {
    field(v, json, proto)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn string(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// A 64-bit integer: JSON writes them as strings.
fn int(v: &Value) -> R<i64> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        Value::String(s) => s.parse().map_err(|_| format!("'{s}' is not an integer")),
        other => Err(format!("{other} is not an integer")),
    }
}

/// A float: JSON writes the non-finite ones as strings.
fn float(v: &Value) -> R<f32> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| f as f32).ok_or("bad float".into()),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f32::NAN),
            "Infinity" => Ok(f32::INFINITY),
            "-Infinity" => Ok(f32::NEG_INFINITY),
            _ => s.parse().map_err(|_| format!("'{s}' is not a float")),
        },
        other => Err(format!("{other} is not a float")),
    }
}

/// `DT_FLOAT` etc. as the enum value (JSON writes enums by name; a number is accepted too).
fn dtype(v: &Value) -> R<i32> {
    if let Some(n) = v.as_i64() {
        return i32::try_from(n).map_err(|_| format!("bad dtype {n}"));
    }
    let name = v.as_str().ok_or("a dtype is not a string")?;
    (0..=23)
        .chain(101..=123)
        .find(|&i| DataType::try_from(i).is_ok_and(|d| d.as_str_name() == name))
        .ok_or_else(|| format!("unknown dtype '{name}'"))
}

/// Standard base64 (with or without padding), as protobuf's JSON mapping writes bytes.
pub fn base64(s: &str) -> R<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(format!("'{s}' is not base64")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

fn shape(v: &Value) -> R<TensorShapeProto> {
    let dim = list(v, "dim", "dim")
        .iter()
        .map(|d| {
            Ok(tensor_shape_proto::Dim {
                size: d.get("size").map_or(Ok(0), int)?,
                name: string(d, "name"),
            })
        })
        .collect::<R<_>>()?;
    let unknown_rank = field(v, "unknownRank", "unknown_rank").and_then(Value::as_bool);
    Ok(TensorShapeProto {
        dim,
        unknown_rank: unknown_rank.unwrap_or(false),
    })
}

fn tensor(v: &Value) -> R<TensorProto> {
    let mut t = TensorProto {
        dtype: v.get("dtype").map_or(Ok(0), dtype)?,
        tensor_shape: field(v, "tensorShape", "tensor_shape")
            .map(shape)
            .transpose()?,
        ..Default::default()
    };
    if let Some(c) = field(v, "tensorContent", "tensor_content").and_then(Value::as_str) {
        t.tensor_content = base64(c)?;
    }
    let ints = |k: &str, p: &str| list(v, k, p).iter().map(int).collect::<R<Vec<i64>>>();
    t.int_val = ints("intVal", "int_val")?
        .into_iter()
        .map(|i| i as i32)
        .collect();
    t.int64_val = ints("int64Val", "int64_val")?;
    t.half_val = ints("halfVal", "half_val")?
        .into_iter()
        .map(|i| i as i32)
        .collect();
    t.float_val = list(v, "floatVal", "float_val")
        .iter()
        .map(float)
        .collect::<R<_>>()?;
    t.double_val = list(v, "doubleVal", "double_val")
        .iter()
        .map(|x| float(x).map(f64::from))
        .collect::<R<_>>()?;
    t.bool_val = list(v, "boolVal", "bool_val")
        .iter()
        .map(|b| b.as_bool().ok_or("a boolVal is not a boolean".to_string()))
        .collect::<R<_>>()?;
    Ok(t)
}

fn func(v: &Value) -> R<NameAttrList> {
    Ok(NameAttrList {
        name: string(v, "name"),
        attr: attrs(v.get("attr"))?,
    })
}

fn attrs(v: Option<&Value>) -> R<HashMap<String, AttrValue>> {
    let Some(m) = v.and_then(Value::as_object) else {
        return Ok(HashMap::new());
    };
    m.iter()
        .map(|(k, a)| Ok((k.clone(), attr(a).map_err(|e| format!("attr '{k}': {e}"))?)))
        .collect()
}

/// An `AttrValue` from its one-field JSON object.
fn attr(v: &Value) -> R<AttrValue> {
    use attr_value::Value as A;
    let obj = v.as_object().ok_or("not an object")?;
    let value = if let Some(s) = obj.get("s") {
        A::S(base64(s.as_str().ok_or("'s' is not a string")?)?)
    } else if let Some(i) = obj.get("i") {
        A::I(int(i)?)
    } else if let Some(f) = obj.get("f") {
        A::F(float(f)?)
    } else if let Some(b) = obj.get("b") {
        A::B(b.as_bool().ok_or("'b' is not a boolean")?)
    } else if let Some(t) = obj.get("type") {
        A::Type(dtype(t)?)
    } else if let Some(s) = obj.get("shape") {
        A::Shape(shape(s)?)
    } else if let Some(t) = obj.get("tensor") {
        A::Tensor(tensor(t)?)
    } else if let Some(l) = obj.get("list") {
        A::List(attr_list(l)?)
    } else if let Some(f) = obj.get("func") {
        A::Func(func(f)?)
    } else if let Some(p) = obj.get("placeholder") {
        A::Placeholder(p.as_str().unwrap_or("").to_string())
    } else {
        return Ok(AttrValue { value: None });
    };
    Ok(AttrValue { value: Some(value) })
}

fn attr_list(l: &Value) -> R<attr_value::ListValue> {
    let strings = |k| {
        list(l, k, k)
            .iter()
            .map(|s| base64(s.as_str().unwrap_or("")))
            .collect::<R<Vec<_>>>()
    };
    Ok(attr_value::ListValue {
        s: strings("s")?,
        i: list(l, "i", "i").iter().map(int).collect::<R<_>>()?,
        f: list(l, "f", "f").iter().map(float).collect::<R<_>>()?,
        b: list(l, "b", "b")
            .iter()
            .map(|b| {
                b.as_bool()
                    .ok_or("a 'b' entry is not a boolean".to_string())
            })
            .collect::<R<_>>()?,
        r#type: list(l, "type", "type")
            .iter()
            .map(dtype)
            .collect::<R<_>>()?,
        shape: list(l, "shape", "shape")
            .iter()
            .map(shape)
            .collect::<R<_>>()?,
        tensor: list(l, "tensor", "tensor")
            .iter()
            .map(tensor)
            .collect::<R<_>>()?,
        func: list(l, "func", "func").iter().map(func).collect::<R<_>>()?,
    })
}

fn node(v: &Value) -> R<NodeDef> {
    let name = string(v, "name");
    let inputs = list(v, "input", "input").iter();
    Ok(NodeDef {
        op: string(v, "op"),
        input: inputs
            .map(|i| i.as_str().unwrap_or("").to_string())
            .collect(),
        device: string(v, "device"),
        attr: attrs(v.get("attr")).map_err(|e| format!("node '{name}': {e}"))?,
        name,
    })
}

fn arg(v: &Value) -> R<op_def::ArgDef> {
    Ok(op_def::ArgDef {
        name: string(v, "name"),
        r#type: v.get("type").map_or(Ok(0), dtype)?,
        type_attr: field(v, "typeAttr", "type_attr")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        number_attr: field(v, "numberAttr", "number_attr")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        ..Default::default()
    })
}

fn function(v: &Value) -> R<FunctionDef> {
    let sig = v
        .get("signature")
        .ok_or("a library function has no signature")?;
    let name = string(sig, "name");
    let in_fn = |e: String| format!("function '{name}': {e}");
    let signature = OpDef {
        name: name.clone(),
        input_arg: list(sig, "inputArg", "input_arg")
            .iter()
            .map(arg)
            .collect::<R<_>>()?,
        output_arg: list(sig, "outputArg", "output_arg")
            .iter()
            .map(arg)
            .collect::<R<_>>()?,
        ..Default::default()
    };
    let strings = |m: Option<&Value>| -> HashMap<String, String> {
        m.and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, s)| (k.clone(), s.as_str().unwrap_or("").to_string()))
            })
            .into_iter()
            .flatten()
            .collect()
    };
    Ok(FunctionDef {
        signature: Some(signature),
        attr: attrs(v.get("attr")).map_err(in_fn)?,
        node_def: list(v, "nodeDef", "node_def")
            .iter()
            .map(node)
            .collect::<R<_>>()
            .map_err(in_fn)?,
        ret: strings(v.get("ret")),
    })
}

/// The topology as a `GraphDef`, its `Const` nodes filled from `weights`.
pub fn graph_def(topology: &Value, weights: &HashMap<String, Tensor>) -> R<GraphDef> {
    graph_def_except(topology, weights, &|_| false)
}

/// [`graph_def`], leaving the graph's own `Const` nodes that `skip` names without their value
/// (the SavedModel writer makes those variables: their weights go to the bundle, not the graph).
pub fn graph_def_except(
    topology: &Value,
    weights: &HashMap<String, Tensor>,
    skip: &dyn Fn(&str) -> bool,
) -> R<GraphDef> {
    let mut nodes: Vec<NodeDef> = list(topology, "node", "node")
        .iter()
        .map(node)
        .collect::<R<_>>()?;
    let mut function: Vec<FunctionDef> = match topology.get("library") {
        Some(lib) => list(lib, "function", "function")
            .iter()
            .map(function)
            .collect::<R<_>>()?,
        None => vec![],
    };
    // The converter renames a function body's constants `<function>/<node>` (graph_rewrite_util
    // `rename_constants`) and stores them as weights under that name too, as graph constants.
    let bodies = function.iter_mut().flat_map(|f| f.node_def.iter_mut());
    let own = nodes.iter_mut().filter(|n| !skip(&n.name));
    for n in own.chain(bodies).filter(|n| n.op == "Const") {
        if let Some(w) = weights.get(&n.name) {
            fill_const(n, w)?;
        }
    }
    Ok(GraphDef {
        node: nodes,
        library: Some(FunctionDefLibrary {
            function,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Gives a `Const` node the weight's values (and its element type: the converter stores
/// int64 constants as int32 weights).
fn fill_const(n: &mut NodeDef, w: &Tensor) -> R<()> {
    let tf_dtype = match w.dtype {
        crate::ir::DType::F32 => DataType::DtFloat,
        crate::ir::DType::I32 => DataType::DtInt32,
        crate::ir::DType::Bool => DataType::DtBool,
        other => return Err(format!("weight '{}' has type {other}", n.name)),
    } as i32;
    let dims = w.shape.iter().map(|&d| tensor_shape_proto::Dim {
        size: d as i64,
        name: String::new(),
    });
    let t = TensorProto {
        dtype: tf_dtype,
        tensor_shape: Some(TensorShapeProto {
            dim: dims.collect(),
            unknown_rank: false,
        }),
        tensor_content: w.data.to_vec(),
        ..Default::default()
    };
    let set = |v| AttrValue { value: Some(v) };
    n.attr
        .insert("value".into(), set(attr_value::Value::Tensor(t)));
    n.attr
        .insert("dtype".into(), set(attr_value::Value::Type(tf_dtype)));
    Ok(())
}

/// The `signature` block as a `SignatureDef` (keys to tensor names, dtypes and shapes).
pub fn signature(sig: &Value) -> R<SignatureDef> {
    let entries = |k: &str| -> R<HashMap<String, TensorInfo>> {
        let empty = Map::new();
        let m = sig.get(k).and_then(Value::as_object).unwrap_or(&empty);
        m.iter()
            .map(|(key, info)| {
                let name = string(info, "name");
                if name.is_empty() {
                    return Err(format!("signature {k} '{key}' names no tensor"));
                }
                Ok((
                    key.clone(),
                    TensorInfo {
                        dtype: info.get("dtype").map_or(Ok(0), dtype)?,
                        tensor_shape: field(info, "tensorShape", "tensor_shape")
                            .map(shape)
                            .transpose()?,
                        encoding: Some(tensor_info::Encoding::Name(name)),
                    },
                ))
            })
            .collect()
    };
    Ok(SignatureDef {
        inputs: entries("inputs")?,
        outputs: entries("outputs")?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_decodes_attr_strings() {
        assert_eq!(base64("TkhXQw==").unwrap(), b"NHWC");
        assert_eq!(base64("U0FNRQ").unwrap(), b"SAME");
        assert!(base64("a b").is_err());
    }

    #[test]
    fn attrs_follow_the_json_mapping() {
        let n = node(
            &json!({"name": "c", "op": "Conv2D", "input": ["x", "k"], "attr": {
            "strides": {"list": {"i": ["1", "2", "2", "1"]}},
            "padding": {"s": "U0FNRQ=="}, "T": {"type": "DT_FLOAT"},
            "alpha": {"f": 0.5}, "flag": {"b": true}, "n": {"i": "3"},
            "shape": {"shape": {"dim": [{"size": "-1"}, {"size": "4"}]}}}}),
        )
        .unwrap();
        use attr_value::Value as A;
        let get = |k: &str| n.attr[k].value.clone().unwrap();
        assert!(matches!(get("strides"), A::List(l) if l.i == vec![1, 2, 2, 1]));
        assert!(matches!(get("padding"), A::S(s) if s == b"SAME"));
        assert!(matches!(get("T"), A::Type(1)));
        assert!(matches!(get("alpha"), A::F(f) if f == 0.5));
        assert!(matches!(get("flag"), A::B(true)));
        assert!(matches!(get("n"), A::I(3)));
        assert!(matches!(get("shape"), A::Shape(s) if s.dim[0].size == -1 && s.dim[1].size == 4));
        assert!(attr(&json!({"type": "DT_NOPE"})).is_err());
    }
}
