//! Deterministic protobuf encoding of the SavedModel protos. prost holds proto `map` fields
//! in `HashMap`s, whose iteration order changes from run to run, so encoding them as prost does
//! would make `saved_model.pb` differ between identical runs. Each message that holds a map is
//! encoded here as: the message with its map (and map-holding) fields cleared, through prost,
//! followed by those fields with map entries in key order. Protobuf parsers accept fields in
//! any order, so the bytes decode to the same message.

use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::{
    attr_value, AttrValue, FunctionDef, FunctionDefLibrary, GraphDef, MetaGraphDef, NameAttrList,
    NodeDef, SavedModel, SignatureDef,
};

/// Appends field `tag` holding `bytes` (a length-delimited field).
fn put(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// Appends the entries of map field `tag` in key order; `value` encodes an entry's value.
fn put_map<V>(
    buf: &mut Vec<u8>,
    tag: u32,
    map: &HashMap<String, V>,
    value: impl Fn(&V) -> Vec<u8>,
) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        let mut entry = Vec::new();
        put(&mut entry, 1, k.as_bytes());
        put(&mut entry, 2, &value(&map[k]));
        put(buf, tag, &entry);
    }
}

pub fn saved_model(m: &SavedModel) -> Vec<u8> {
    let rest = SavedModel {
        meta_graphs: vec![],
        ..m.clone()
    };
    let mut buf = rest.encode_to_vec();
    for mg in &m.meta_graphs {
        put(&mut buf, 2, &meta_graph(mg));
    }
    buf
}

fn meta_graph(m: &MetaGraphDef) -> Vec<u8> {
    let rest = MetaGraphDef {
        graph_def: None,
        collection_def: HashMap::new(),
        signature_def: HashMap::new(),
        ..m.clone()
    };
    let mut buf = rest.encode_to_vec();
    if let Some(g) = &m.graph_def {
        put(&mut buf, 2, &graph(g));
    }
    put_map(&mut buf, 4, &m.collection_def, |c| c.encode_to_vec());
    put_map(&mut buf, 5, &m.signature_def, signature);
    buf
}

pub fn graph(g: &GraphDef) -> Vec<u8> {
    let rest = GraphDef {
        node: vec![],
        library: None,
        ..g.clone()
    };
    let mut buf = rest.encode_to_vec();
    for n in &g.node {
        put(&mut buf, 1, &node(n));
    }
    if let Some(l) = &g.library {
        put(&mut buf, 2, &library(l));
    }
    buf
}

fn library(l: &FunctionDefLibrary) -> Vec<u8> {
    let rest = FunctionDefLibrary {
        function: vec![],
        ..l.clone()
    };
    let mut buf = rest.encode_to_vec();
    for f in &l.function {
        put(&mut buf, 1, &function(f));
    }
    buf
}

fn function(f: &FunctionDef) -> Vec<u8> {
    let rest = FunctionDef {
        attr: HashMap::new(),
        node_def: vec![],
        ret: HashMap::new(),
        ..f.clone()
    };
    let mut buf = rest.encode_to_vec();
    for n in &f.node_def {
        put(&mut buf, 3, &node(n));
    }
    put_map(&mut buf, 4, &f.ret, |s| s.as_bytes().to_vec());
    put_map(&mut buf, 5, &f.attr, attr);
    buf
}

fn node(n: &NodeDef) -> Vec<u8> {
    let rest = NodeDef {
        attr: HashMap::new(),
        ..n.clone()
    };
    let mut buf = rest.encode_to_vec();
    put_map(&mut buf, 5, &n.attr, attr);
    buf
}

fn attr(a: &AttrValue) -> Vec<u8> {
    match &a.value {
        Some(attr_value::Value::Func(f)) => {
            let mut buf = Vec::new();
            put(&mut buf, 10, &name_attrs(f));
            buf
        }
        Some(attr_value::Value::List(l)) if !l.func.is_empty() => {
            let mut list = attr_value::ListValue {
                func: vec![],
                ..l.clone()
            }
            .encode_to_vec();
            for f in &l.func {
                put(&mut list, 9, &name_attrs(f));
            }
            let mut buf = Vec::new();
            put(&mut buf, 1, &list);
            buf
        }
        _ => a.encode_to_vec(),
    }
}

fn name_attrs(f: &NameAttrList) -> Vec<u8> {
    let mut buf = Vec::new();
    if !f.name.is_empty() {
        put(&mut buf, 1, f.name.as_bytes());
    }
    put_map(&mut buf, 2, &f.attr, attr);
    buf
}

fn signature(s: &SignatureDef) -> Vec<u8> {
    let rest = SignatureDef {
        inputs: HashMap::new(),
        outputs: HashMap::new(),
        ..s.clone()
    };
    let mut buf = rest.encode_to_vec();
    put_map(&mut buf, 1, &s.inputs, |t| t.encode_to_vec());
    put_map(&mut buf, 2, &s.outputs, |t| t.encode_to_vec());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_encode_in_key_order_and_decode_back() {
        let mut n = NodeDef {
            name: "c".into(),
            op: "Conv2D".into(),
            ..Default::default()
        };
        for (i, k) in ["strides", "padding", "T", "data_format", "dilations"]
            .iter()
            .enumerate()
        {
            let v = AttrValue {
                value: Some(attr_value::Value::I(i as i64)),
            };
            n.attr.insert(k.to_string(), v);
        }
        let g = GraphDef {
            node: vec![n],
            ..Default::default()
        };
        let bytes = graph(&g);
        assert_eq!(GraphDef::decode(&bytes[..]).unwrap(), g);
        // The same message built in another insertion order gives the same bytes.
        let mut again = g.clone();
        let attrs: Vec<_> = again.node[0].attr.drain().collect();
        again.node[0].attr.extend(attrs.into_iter().rev());
        assert_eq!(graph(&again), bytes);
    }
}
