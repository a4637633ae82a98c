//! ONNX writer: default opset 17 (13–21). Graph I/O names, order, dtypes and symbolic dims are
//! kept. Initializer bytes are streamed from the IR's shared buffers into the output (never
//! gathered into one protobuf message), and go to an external data file beside the model when
//! the weights pass protobuf's 2 GiB limit (or when asked).

mod emit;
mod nodes;

use super::{AtomicFile, WriteReport, Writer};
use crate::error::{failed, Error, Result, Unsupported};
use crate::formats::onnx::onnx_code;
use crate::ir::{Dim, Graph, TensorType, ValueId};
use emit::{Emitter, Initializer};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use std::io::Write;
use std::path::Path;
use tract_onnx::pb;

pub const DEFAULT_OPSET: i64 = 17;
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;
/// Protobuf messages cannot pass 2 GiB; leave room for the graph itself.
const EXTERNAL_THRESHOLD: u64 = (2 << 30) - (64 << 20);
/// Tensors smaller than this stay inline even when weights go external.
const EXTERNAL_MIN_TENSOR: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalData {
    /// External only when the model would not fit in one protobuf.
    Auto,
    Always,
}

pub struct OnnxWriter {
    /// The opset to write; `None` picks 17, or the lowest later one the graph needs.
    pub opset: Option<i64>,
    pub external: ExternalData,
}

impl Default for OnnxWriter {
    fn default() -> OnnxWriter {
        OnnxWriter {
            opset: None,
            external: ExternalData::Auto,
        }
    }
}

/// The model without initializer data, plus the initializers to stream after it.
struct Built {
    model: pb::ModelProto,
    graph: pb::GraphProto,
    initializers: Vec<Initializer>,
}

impl OnnxWriter {
    /// The opset this writer will use for `g`.
    pub fn opset_for(&self, g: &Graph) -> i64 {
        self.opset.unwrap_or_else(|| {
            g.nodes
                .iter()
                .map(|n| nodes::min_opset(g, n))
                .fold(DEFAULT_OPSET, i64::max)
        })
    }

    fn build(&self, g: &Graph) -> std::result::Result<Built, Vec<Unsupported>> {
        let opset = self.opset_for(g);
        let mut em = Emitter::new(g, opset);
        let mut problems = Vec::new();
        for (k, n) in g.nodes.iter().enumerate() {
            em.position = k;
            if let Err(reason) = nodes::emit_node(&mut em, n) {
                problems.push(Unsupported {
                    op: n.op.name(),
                    node: n.name.clone(),
                    reason,
                });
            }
        }
        // Graph outputs that are constants need a node to produce them.
        for &o in &g.outputs {
            if let Some(t) = g.constant(o) {
                let name = g.value(o).name.clone();
                em.node(
                    "Constant",
                    &name,
                    vec![],
                    vec![name.clone()],
                    vec![emit::attr_t("value", t)],
                );
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let graph = pb::GraphProto {
            node: std::mem::take(&mut em.nodes),
            name: "mdeploy".into(),
            input: g.inputs.iter().map(|&i| value_info(g, i)).collect(),
            output: g.outputs.iter().map(|&o| value_info(g, o)).collect(),
            ..Default::default()
        };
        let model = pb::ModelProto {
            ir_version: ir_version(opset),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            producer_name: "mdeploy".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        Ok(Built {
            model,
            graph,
            initializers: em.initializers,
        })
    }

    /// Serializes the model into `out`; tensors selected by `external` go to `data` instead.
    fn encode(
        built: &Built,
        out: &mut impl Write,
        mut data: Option<(&mut dyn Write, &str)>,
    ) -> std::io::Result<u64> {
        let mut data_offset = 0u64;
        let mut entries: Vec<(Vec<u8>, Option<&[u8]>)> =
            Vec::with_capacity(built.initializers.len());
        for init in &built.initializers {
            let t = &init.tensor;
            let mut header = pb::TensorProto {
                dims: t.shape.iter().map(|&d| d as i64).collect(),
                data_type: onnx_code(t.dtype),
                name: init.name.clone(),
                ..Default::default()
            };
            let inline = match data.as_mut() {
                Some((w, location)) if t.data.len() >= EXTERNAL_MIN_TENSOR => {
                    w.write_all(&t.data)?;
                    header.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
                    header.external_data = vec![
                        kv("location", location),
                        kv("offset", &data_offset.to_string()),
                        kv("length", &t.data.len().to_string()),
                    ];
                    data_offset += t.data.len() as u64;
                    None
                }
                _ => Some(&t.data[..]),
            };
            entries.push((header.encode_to_vec(), inline));
        }
        let tensor_len = |(h, raw): &(Vec<u8>, Option<&[u8]>)| -> usize {
            h.len()
                + raw.map_or(0, |r| {
                    if r.is_empty() {
                        0
                    } else {
                        1 + encoded_len_varint(r.len() as u64) + r.len()
                    }
                })
        };
        let graph_head = built.graph.encode_to_vec();
        let graph_len: usize = graph_head.len()
            + entries
                .iter()
                .map(|e| {
                    let l = tensor_len(e);
                    1 + encoded_len_varint(l as u64) + l
                })
                .sum::<usize>();
        let mut head = built.model.encode_to_vec();
        encode_key(7, WireType::LengthDelimited, &mut head);
        encode_varint(graph_len as u64, &mut head);
        out.write_all(&head)?;
        out.write_all(&graph_head)?;
        let mut written = (head.len() + graph_head.len()) as u64;
        for e in &entries {
            let mut key = Vec::with_capacity(16);
            encode_key(5, WireType::LengthDelimited, &mut key);
            encode_varint(tensor_len(e) as u64, &mut key);
            key.extend_from_slice(&e.0);
            if let Some(raw) = e.1.filter(|r| !r.is_empty()) {
                encode_key(9, WireType::LengthDelimited, &mut key);
                encode_varint(raw.len() as u64, &mut key);
                out.write_all(&key)?;
                out.write_all(raw)?;
                written += (key.len() + raw.len()) as u64;
            } else {
                out.write_all(&key)?;
                written += key.len() as u64;
            }
        }
        Ok(written)
    }

    /// The model as bytes in memory, weights inline (used by evaluation).
    pub fn to_bytes(&self, g: &Graph) -> Result<Vec<u8>> {
        let built = self.build(g).map_err(|items| Error::Unsupported {
            file: "graph".into(),
            items,
        })?;
        let mut out = Vec::new();
        OnnxWriter::encode(&built, &mut out, None).map_err(|e| failed(e.to_string()))?;
        Ok(out)
    }

    /// The model as one protobuf message, weights inline: what the evaluator hands tract
    /// without serializing (the weights are copied once, into the message, instead of into
    /// bytes and then again into the decoded message).
    pub fn to_proto(&self, g: &Graph) -> Result<pb::ModelProto> {
        let Built {
            mut model,
            mut graph,
            initializers,
        } = self.build(g).map_err(|items| Error::Unsupported {
            file: "graph".into(),
            items,
        })?;
        graph.initializer = initializers
            .into_iter()
            .map(|init| pb::TensorProto {
                dims: init.tensor.shape.iter().map(|&d| d as i64).collect(),
                data_type: onnx_code(init.tensor.dtype),
                name: init.name,
                raw_data: init.tensor.data.to_vec(),
                ..Default::default()
            })
            .collect();
        model.graph = Some(graph);
        Ok(model)
    }
}

/// NCHW data and OIHW/IOHW kernels everywhere; transposes left only where the source's own
/// layout meets the graph's inputs and outputs.
pub fn legalize(g: &mut Graph) -> Result<()> {
    let fail = |e: String| failed(format!("ONNX layout legalization: {e}"));
    crate::passes::rnn::lower_cell_clips(g).map_err(fail)?;
    let moved = crate::passes::layout::to_layout(
        g,
        crate::ir::Layout::Nchw,
        crate::passes::layout::ONNX_KERNELS,
    )
    .map_err(fail)?;
    if moved {
        crate::passes::transpose::clean_transposes(g).map_err(fail)?;
    }
    crate::passes::layout::reductions_to_global_pools(g);
    g.verify()
        .map_err(|e| failed(format!("ONNX legalization broke the graph: {e}")))
}

fn kv(key: &str, value: &str) -> pb::StringStringEntryProto {
    pb::StringStringEntryProto {
        key: key.into(),
        value: value.into(),
    }
}

fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

pub(crate) fn value_info(g: &Graph, v: ValueId) -> pb::ValueInfoProto {
    let value = g.value(v);
    pb::ValueInfoProto {
        name: value.name.clone(),
        r#type: Some(type_proto(&value.ty)),
        ..Default::default()
    }
}

pub(crate) fn type_proto(t: &TensorType) -> pb::TypeProto {
    use pb::tensor_shape_proto::{dimension::Value as D, Dimension};
    let dim = t
        .shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => D::DimValue(*n as i64),
                Dim::Sym(s) => D::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: onnx_code(t.dtype),
            shape: Some(pb::TensorShapeProto { dim }),
        })),
        ..Default::default()
    }
}

impl Writer for OnnxWriter {
    fn name(&self) -> &'static str {
        "onnx"
    }

    fn legalize(&self, g: &mut Graph) -> Result<()> {
        legalize(g)
    }

    fn check(&self, g: &Graph) -> Vec<Unsupported> {
        self.build(g).err().unwrap_or_default()
    }

    fn write(&self, g: &Graph, out: &Path) -> Result<WriteReport> {
        let built = self.build(g).map_err(|items| Error::Unsupported {
            file: out.display().to_string(),
            items,
        })?;
        let weight_bytes: u64 = built
            .initializers
            .iter()
            .map(|i| i.tensor.data.len() as u64)
            .sum();
        let external = self.external == ExternalData::Always || weight_bytes > EXTERNAL_THRESHOLD;
        let mut model = AtomicFile::create(out)?;
        let mut files = vec![out.to_path_buf()];
        let bytes = if external {
            let name = format!(
                "{}.data",
                out.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            let data_path = out.with_file_name(&name);
            let mut data = AtomicFile::create(&data_path)?;
            let n = OnnxWriter::encode(&built, model.writer(), Some((data.writer(), &name)))
                .map_err(super::io_err(out))?;
            data.commit()?;
            files.push(data_path);
            n
        } else {
            OnnxWriter::encode(&built, model.writer(), None).map_err(super::io_err(out))?
        };
        model.commit()?;
        Ok(WriteReport {
            files,
            bytes,
            nodes: built.graph.node.len(),
        })
    }
}
