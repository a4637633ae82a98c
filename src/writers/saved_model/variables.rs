//! The graph's weights as TF1 resource variables and the saver that restores them, as a
//! TF1 `SavedModelBuilder` writes them (what TF Serving's loader, `tf.saved_model.load` and the
//! converters' V1 importers expect):
//!
//! - per weight `N`: `N` (`VarHandleOp`, `shared_name` N), `N/Read/ReadVariableOp` (what the
//!   graph's users of the former `Const N` now read), and an initializer (`N/Assign` of zeros)
//!   that `VariableDef` must name, though loading restores instead;
//! - `save/`: `save/Const` (the checkpoint prefix, fed by the loader), `SaveV2` behind
//!   `save/control_dependency`, and `RestoreV2` → `AssignVariableOp` per weight behind the
//!   `save/restore_all` NoOp; `SaverDef` names those three;
//! - the `variables` collection (one `VariableDef` each): Python's loader re-creates the
//!   variables from it and lifts them out of the signature functions, which is what lets
//!   `convert_variables_to_constants_v2` (TFLiteConverter, tensorflowjs_converter, tf2onnx)
//!   freeze them.

use crate::formats::tensor_bundle::dtype_to_tf;
use crate::ir::Tensor;
use prost::Message;
use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::{
    attr_value, collection_def, tensor_shape_proto, AttrValue, CollectionDef, DataType, NodeDef,
    SaverDef, TensorProto, TensorShapeProto, VariableDef,
};

const DT_STRING: i32 = DataType::DtString as i32;

/// A weight turned into a variable: its checkpoint key (the `VarHandleOp`'s name) and value.
pub struct Variable {
    pub name: String,
    pub tensor: Tensor,
}

fn a(v: attr_value::Value) -> AttrValue {
    AttrValue { value: Some(v) }
}

fn a_type(t: i32) -> AttrValue {
    a(attr_value::Value::Type(t))
}

fn shape(dims: &[usize]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| tensor_shape_proto::Dim {
                size: d as i64,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

pub fn node(name: &str, op: &str, input: &[String], attr: Vec<(&str, AttrValue)>) -> NodeDef {
    NodeDef {
        name: name.into(),
        op: op.into(),
        input: input.to_vec(),
        attr: attr.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Default::default()
    }
}

fn const_node(name: &str, t: TensorProto) -> NodeDef {
    let dtype = t.dtype;
    node(
        name,
        "Const",
        &[],
        vec![
            ("dtype", a_type(dtype)),
            ("value", a(attr_value::Value::Tensor(t))),
        ],
    )
}

/// A string `Const`: a vector of `v`, or its one element as a scalar.
fn strings(name: &str, v: &[&str], scalar: bool) -> NodeDef {
    let dims = if scalar { vec![] } else { vec![v.len()] };
    const_node(
        name,
        TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(shape(&dims)),
            string_val: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        },
    )
}

/// The nodes of variable `v` (handle, read, initializer).
fn variable_nodes(v: &Variable) -> Vec<NodeDef> {
    let n = &v.name;
    let dt = dtype_to_tf(v.tensor.dtype);
    let dims: Vec<i32> = v.tensor.shape.iter().map(|&d| d as i32).collect();
    let s = |x: &str| a(attr_value::Value::S(x.as_bytes().to_vec()));
    vec![
        node(
            n,
            "VarHandleOp",
            &[],
            vec![
                ("dtype", a_type(dt)),
                ("shape", a(attr_value::Value::Shape(shape(&v.tensor.shape)))),
                ("shared_name", s(n)),
                ("container", s("")),
                (
                    "allowed_devices",
                    a(attr_value::Value::List(Default::default())),
                ),
            ],
        ),
        node(
            &format!("{n}/Read/ReadVariableOp"),
            "ReadVariableOp",
            std::slice::from_ref(n),
            vec![("dtype", a_type(dt))],
        ),
        const_node(
            &format!("{n}/Initializer/shape"),
            TensorProto {
                dtype: DataType::DtInt32 as i32,
                tensor_shape: Some(shape(&[dims.len()])),
                int_val: dims,
                ..Default::default()
            },
        ),
        const_node(
            &format!("{n}/Initializer/zero"),
            TensorProto {
                dtype: dt,
                tensor_shape: Some(shape(&[])),
                tensor_content: vec![0; v.tensor.dtype.size()],
                ..Default::default()
            },
        ),
        node(
            &format!("{n}/Initializer/zeros"),
            "Fill",
            &[
                format!("{n}/Initializer/shape"),
                format!("{n}/Initializer/zero"),
            ],
            vec![
                ("T", a_type(dt)),
                ("index_type", a_type(DataType::DtInt32 as i32)),
            ],
        ),
        node(
            &format!("{n}/Assign"),
            "AssignVariableOp",
            &[n.clone(), format!("{n}/Initializer/zeros")],
            vec![("dtype", a_type(dt))],
        ),
    ]
}

/// What the variables add to the graph and the MetaGraphDef. `vars` are in key order.
pub struct Saver {
    pub nodes: Vec<NodeDef>,
    pub saver_def: SaverDef,
    pub collection: CollectionDef,
}

pub fn saver(vars: &[Variable]) -> Saver {
    let mut nodes: Vec<NodeDef> = vars.iter().flat_map(variable_nodes).collect();
    let string_scalar = vec![
        ("dtype", a_type(DT_STRING)),
        ("shape", a(attr_value::Value::Shape(shape(&[])))),
    ];
    nodes.push(strings("save/filename", &["model"], true));
    nodes.push(node(
        "save/Const",
        "PlaceholderWithDefault",
        &["save/filename".into()],
        string_scalar,
    ));
    nodes.extend(save_and_restore(vars));
    Saver {
        nodes,
        saver_def: SaverDef {
            filename_tensor_name: "save/Const:0".into(),
            save_tensor_name: "save/control_dependency:0".into(),
            restore_op_name: "save/restore_all".into(),
            max_to_keep: 5,
            sharded: false,
            keep_checkpoint_every_n_hours: 10000.0,
            version: 2, // SaverDef.V2: the tensor-bundle format
        },
        collection: variables_collection(vars),
    }
}

/// `SaveV2` of every variable's value behind `save/control_dependency`, and `RestoreV2` →
/// `AssignVariableOp` per variable behind `save/restore_all`; both with the prefix `save/Const`.
fn save_and_restore(vars: &[Variable]) -> Vec<NodeDef> {
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    let slices = vec![""; vars.len()];
    let dtypes = attr_value::ListValue {
        r#type: vars.iter().map(|v| dtype_to_tf(v.tensor.dtype)).collect(),
        ..Default::default()
    };
    let mut nodes = Vec::new();
    for op in ["SaveV2", "RestoreV2"] {
        nodes.push(strings(&format!("save/{op}/tensor_names"), &names, false));
        nodes.push(strings(
            &format!("save/{op}/shape_and_slices"),
            &slices,
            false,
        ));
    }
    let mut save_in: Vec<String> = vec![
        "save/Const".into(),
        "save/SaveV2/tensor_names".into(),
        "save/SaveV2/shape_and_slices".into(),
    ];
    save_in.extend(names.iter().map(|n| format!("{n}/Read/ReadVariableOp")));
    let dtypes_attr = || vec![("dtypes", a(attr_value::Value::List(dtypes.clone())))];
    nodes.push(node("save/SaveV2", "SaveV2", &save_in, dtypes_attr()));
    nodes.push(node(
        "save/control_dependency",
        "Identity",
        &["save/Const".into(), "^save/SaveV2".into()],
        vec![("T", a_type(DT_STRING))],
    ));
    let restore_in = [
        "save/Const".into(),
        "save/RestoreV2/tensor_names".into(),
        "save/RestoreV2/shape_and_slices".into(),
    ];
    nodes.push(node(
        "save/RestoreV2",
        "RestoreV2",
        &restore_in,
        dtypes_attr(),
    ));
    let mut restores = Vec::new();
    for (k, v) in vars.iter().enumerate() {
        let name = format!("save/AssignVariableOp_{k}");
        nodes.push(node(
            &name,
            "AssignVariableOp",
            &[v.name.clone(), format!("save/RestoreV2:{k}")],
            vec![("dtype", a_type(dtype_to_tf(v.tensor.dtype)))],
        ));
        restores.push(format!("^{name}"));
    }
    nodes.push(node("save/restore_all", "NoOp", &restores, vec![]));
    nodes
}

/// The `variables` collection: a `VariableDef` per variable, naming its nodes.
fn variables_collection(vars: &[Variable]) -> CollectionDef {
    let defs = vars.iter().map(|v| {
        VariableDef {
            variable_name: format!("{}:0", v.name),
            initial_value_name: format!("{}/Initializer/zeros:0", v.name),
            initializer_name: format!("{}/Assign", v.name),
            snapshot_name: format!("{}/Read/ReadVariableOp:0", v.name),
            is_resource: true,
            trainable: true,
            ..Default::default()
        }
        .encode_to_vec()
    });
    CollectionDef {
        kind: Some(collection_def::Kind::BytesList(collection_def::BytesList {
            value: defs.collect(),
        })),
    }
}

/// Points every reference to one of `renamed`'s keys (a former `Const`) at its new name.
pub fn redirect(nodes: &mut [NodeDef], renamed: &HashMap<String, String>) {
    for n in nodes {
        for input in &mut n.input {
            let (ctrl, rest) = match input.strip_prefix('^') {
                Some(r) => ("^", r),
                None => ("", input.as_str()),
            };
            let (base, port) = match rest.rsplit_once(':') {
                Some((b, p)) if p.bytes().all(|c| c.is_ascii_digit()) => (b, Some(p)),
                _ => (rest, None),
            };
            if let Some(to) = renamed.get(base) {
                *input = match port {
                    Some(p) => format!("{ctrl}{to}:{p}"),
                    None => format!("{ctrl}{to}"),
                };
            }
        }
    }
}
