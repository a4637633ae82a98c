//! The flatbuffer: TFL3, schema version 3, the main subgraph then the bodies control flow runs,
//! buffer 0 empty, constant buffers
//! deduplicated by content and 16-byte aligned, opcodes deduplicated in first-use order, a
//! `serving_default` signature with the source's I/O names and `min_runtime_version` metadata.
//! Every table is built in a fixed order from the plan, so equal input gives equal bytes.

use super::plan::{Plan, TRef};
use super::versions::{self, Sig};
use crate::formats::tensor_bundle::crc::crc32c;
use crate::ir::{DType, Dim, Graph, QuantParams, Tensor, TensorType};
use flatbuffers::{FlatBufferBuilder, Push, PushAlignment, WIPOffset};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use tract_tflite::tflite::{self as t, BuiltinOperator as B};

pub const SIGNATURE_KEY: &str = "serving_default";

pub fn tensor_type(d: DType) -> Result<t::TensorType, String> {
    Ok(match d {
        DType::F32 => t::TensorType::FLOAT32,
        DType::F16 => t::TensorType::FLOAT16,
        DType::F64 => t::TensorType::FLOAT64,
        DType::I8 => t::TensorType::INT8,
        DType::U8 => t::TensorType::UINT8,
        DType::I16 => t::TensorType::INT16,
        DType::U16 => t::TensorType::UINT16,
        DType::I32 => t::TensorType::INT32,
        DType::U32 => t::TensorType::UINT32,
        DType::I64 => t::TensorType::INT64,
        DType::U64 => t::TensorType::UINT64,
        DType::Bool => t::TensorType::BOOL,
        DType::BF16 => return Err("TFLite has no bfloat16 tensors".into()),
    })
}

/// One tensor of the subgraph.
struct Slot<'p> {
    name: &'p str,
    ty: &'p TensorType,
    data: Option<&'p Tensor>,
    /// `content_key` of `data`, computed once.
    key: u64,
    quant: Option<&'p QuantParams>,
    variable: bool,
}

/// Zero-sized marker that raises the builder's alignment to 16 bytes.
struct Align16;

impl Push for Align16 {
    type Output = Align16;
    unsafe fn push(&self, _dst: &mut [u8], _written_len: usize) {}
    fn size() -> usize {
        0
    }
    fn alignment() -> PushAlignment {
        PushAlignment::new(16)
    }
}

/// A key for deduplicating constants by content: equal tensors have equal keys (equal keys are
/// then compared in full). The bytes are summed by CRC32C (from `crcs` when computed there).
fn content_key(t: &Tensor, crcs: &Crcs) -> u64 {
    let mut h = DefaultHasher::new();
    t.dtype.hash(&mut h);
    t.shape.hash(&mut h);
    t.data.len().hash(&mut h);
    let crc = crcs.get(&bytes_id(&t.data)).copied();
    crc.unwrap_or_else(|| crc32c(&t.data)).hash(&mut h);
    h.finish()
}

/// The CRC32C of constant bytes, by [`bytes_id`].
type Crcs = HashMap<(usize, usize), u32>;

/// Which bytes: where they are and how many (clones of a tensor share them).
fn bytes_id(b: &[u8]) -> (usize, usize) {
    (b.as_ptr() as usize, b.len())
}

/// The CRC32C of every constant the model's subgraphs hold, on all cores: it is a whole pass
/// over the weights.
fn constant_crcs(g: &Graph, plan: &Plan) -> Crcs {
    fn collect<'a>(g: &'a Graph, plan: &'a Plan, out: &mut Vec<&'a [u8]>) {
        out.extend(
            g.values
                .iter()
                .filter_map(|v| v.constant.as_ref())
                .map(|t| &t.data[..]),
        );
        out.extend(
            plan.extra
                .iter()
                .filter_map(|e| e.data.as_ref())
                .map(|t| &t.data[..]),
        );
        for c in &plan.children {
            collect(&c.graph, &c.plan, out);
        }
    }
    let mut all = Vec::new();
    collect(g, plan, &mut all);
    let crcs = crate::parallel::map(&all, |b| b.len(), |b| crc32c(b));
    all.iter().map(|b| bytes_id(b)).zip(crcs).collect()
}

struct Tensors<'p, 'c> {
    crcs: &'c Crcs,
    slots: Vec<Slot<'p>>,
    index: HashMap<TRef, i32>,
    /// Constant tensors by content, for deduplication (lookup only; order comes from `slots`).
    by_content: HashMap<u64, Vec<i32>>,
}

impl<'p> Tensors<'p, '_> {
    fn get(&mut self, g: &'p Graph, plan: &'p Plan, r: TRef) -> i32 {
        if let Some(&i) = self.index.get(&r) {
            return i;
        }
        let slot = match r {
            TRef::Value(v) => {
                let value = g.value(v);
                Slot {
                    name: &value.name,
                    ty: &value.ty,
                    data: value.constant.as_ref(),
                    key: 0,
                    quant: plan.quant.get(&v).or(value.quant.as_ref()),
                    variable: false,
                }
            }
            TRef::Extra(k) => {
                let e = &plan.extra[k];
                Slot {
                    name: &e.name,
                    ty: &e.ty,
                    data: e.data.as_ref(),
                    key: 0,
                    quant: e.quant.as_ref(),
                    variable: e.variable,
                }
            }
        };
        let mut slot = slot;
        slot.key = slot.data.map_or(0, |t| content_key(t, self.crcs));
        if let (Some(data), None) = (slot.data, slot.quant) {
            let key = slot.key;
            let same = self.by_content.get(&key).and_then(|c| {
                c.iter()
                    .copied()
                    .find(|&i| self.slots[i as usize].data == Some(data))
            });
            if let Some(i) = same {
                self.index.insert(r, i);
                return i;
            }
            let i = self.slots.len() as i32;
            self.by_content.entry(key).or_default().push(i);
        }
        self.slots.push(slot);
        let i = self.slots.len() as i32 - 1;
        self.index.insert(r, i);
        i
    }
}

/// One subgraph being built: its tensors and the tensor indices of its operators.
struct Part<'p, 'c> {
    plan: &'p Plan,
    ts: Tensors<'p, 'c>,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    op_io: Vec<(Vec<i32>, Vec<i32>)>,
    op_code_index: Vec<u32>,
}

fn part<'p, 'c>(g: &'p Graph, plan: &'p Plan, crcs: &'c Crcs) -> Part<'p, 'c> {
    let mut ts = Tensors {
        crcs,
        slots: Vec::new(),
        index: HashMap::new(),
        by_content: HashMap::new(),
    };
    let inputs: Vec<i32> = g
        .inputs
        .iter()
        .map(|&v| ts.get(g, plan, TRef::Value(v)))
        .collect();
    let mut op_io: Vec<(Vec<i32>, Vec<i32>)> = Vec::with_capacity(plan.ops.len());
    for op in &plan.ops {
        let ins = op
            .inputs
            .iter()
            .map(|r| r.map_or(-1, |r| ts.get(g, plan, r)))
            .collect();
        let outs = op.outputs.iter().map(|&r| ts.get(g, plan, r)).collect();
        op_io.push((ins, outs));
    }
    let outputs: Vec<i32> = g
        .outputs
        .iter()
        .map(|&v| ts.get(g, plan, TRef::Value(v)))
        .collect();
    Part {
        plan,
        ts,
        inputs,
        outputs,
        op_io,
        op_code_index: Vec::new(),
    }
}

/// Opcodes `(code, version)` deduplicated in first-use order over every subgraph, each
/// operator's index into them, and the runtime version the file needs.
fn opcodes(parts: &mut [Part]) -> (Vec<(B, i32)>, String) {
    let mut codes: Vec<(B, i32)> = Vec::new();
    let mut min_runtime = String::from("1.5.0");
    for p in parts.iter_mut() {
        let mut index = Vec::with_capacity(p.plan.ops.len());
        for (op, (ins, outs)) in p.plan.ops.iter().zip(&p.op_io) {
            let slots = &p.ts.slots;
            let sig = Sig {
                inputs: ins
                    .iter()
                    .map(|&i| (i >= 0).then(|| slots[i as usize].ty))
                    .collect(),
                outputs: outs.iter().map(|&i| slots[i as usize].ty).collect(),
                per_axis_input: ins
                    .first()
                    .filter(|&&i| i >= 0)
                    .and_then(|&i| slots[i as usize].quant)
                    .is_some_and(|q| q.axis.is_some()),
                per_axis_weights: ins
                    .get(1)
                    .filter(|&&i| i >= 0)
                    .and_then(|&i| slots[i as usize].quant)
                    .is_some_and(|q| q.axis.is_some() && q.scale.len() > 1),
            };
            let v = versions::version(op, &sig);
            if let Some(rt) = versions::runtime(op.code, v) {
                if versions::later(rt, &min_runtime) {
                    min_runtime = rt.to_string();
                }
            }
            let idx = match codes.iter().position(|&c| c == (op.code, v)) {
                Some(i) => i,
                None => {
                    codes.push((op.code, v));
                    codes.len() - 1
                }
            };
            index.push(idx as u32);
        }
        p.op_code_index = index;
    }
    (codes, min_runtime)
}

/// A built model file: the flatbuffer's bytes from `head` on, except the constant buffers'
/// contents, which are holes (zeros never written, so never resident) filled from the tensors
/// as the file is written: the weights are not copied into the builder.
pub struct Built<'p> {
    buf: Vec<u8>,
    head: usize,
    /// Where each hole starts in `buf`, and its bytes; in file order.
    holes: Vec<(usize, &'p [u8])>,
}

impl Built<'_> {
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the file's bytes: the builder's between the holes, the tensors' in them.
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut at = self.head;
        for &(start, data) in &self.holes {
            out.write_all(&self.buf[at..start])?;
            out.write_all(data)?;
            at = start + data.len();
        }
        out.write_all(&self.buf[at..])
    }

    /// The file's bytes in memory.
    pub fn into_bytes(self) -> Vec<u8> {
        let Built {
            mut buf,
            head,
            holes,
        } = self;
        for (start, data) in holes {
            buf[start..start + data.len()].copy_from_slice(data);
        }
        buf.drain(..head);
        buf
    }
}

/// Builds the model file's bytes: the main graph is subgraph 0, the bodies its control flow
/// runs (`Plan::children`) follow in order.
pub fn build(g: &Graph, plan: &Plan) -> Result<Vec<u8>, String> {
    Ok(build_file(g, plan)?.into_bytes())
}

/// [`build`], with the weights left as holes to write from the tensors.
pub fn build_file<'p>(g: &'p Graph, plan: &'p Plan) -> Result<Built<'p>, String> {
    let crcs = constant_crcs(g, plan);
    let mut parts = vec![part(g, plan, &crcs)];
    for c in &plan.children {
        parts.push(part(&c.graph, &c.plan, &crcs));
    }
    let (codes, min_runtime) = opcodes(&mut parts);

    // Room for everything, so that the builder never grows (growing copies what it holds): the
    // weights, and a generous bound on the tables around them.
    let slots: usize = parts.iter().map(|p| p.ts.slots.len()).sum();
    let ops: usize = parts.iter().map(|p| p.plan.ops.len()).sum();
    let weight_bytes: usize = parts
        .iter()
        .flat_map(|p| &p.ts.slots)
        .filter_map(|s| s.data.map(|d| d.data.len() + 16))
        .sum();
    let tables = 512 * (slots + ops) + (1 << 16);
    let mut fbb = FlatBufferBuilder::with_capacity(weight_bytes + tables);
    let mut holes: Vec<(usize, &[u8])> = Vec::new();
    fbb.push(Align16);

    // Buffers: 0 is the empty sentinel; constants get theirs (deduplicated by content, across
    // subgraphs).
    let mut buffers = vec![t::Buffer::create(&mut fbb, &t::BufferArgs { data: None })];
    let mut buffer_by_content: HashMap<u64, Vec<(u32, &Tensor)>> = HashMap::new();
    let mut tensor_buffers: Vec<Vec<u32>> = Vec::with_capacity(parts.len());
    for p in &parts {
        let mut tensor_buffer = vec![0u32; p.ts.slots.len()];
        for (i, s) in p.ts.slots.iter().enumerate() {
            let Some(d) = s.data else { continue };
            let key = s.key;
            let found = buffer_by_content
                .get(&key)
                .and_then(|c| c.iter().find(|(_, e)| e.data == d.data).map(|(b, _)| *b));
            let b = match found {
                Some(b) => b,
                None => {
                    let data = aligned_hole(&mut fbb, &d.data, &mut holes);
                    buffers.push(t::Buffer::create(
                        &mut fbb,
                        &t::BufferArgs { data: Some(data) },
                    ));
                    let b = buffers.len() as u32 - 1;
                    buffer_by_content.entry(key).or_default().push((b, d));
                    b
                }
            };
            tensor_buffer[i] = b;
        }
        tensor_buffers.push(tensor_buffer);
    }
    let mut rt_bytes = min_runtime.into_bytes();
    rt_bytes.resize(16, 0);
    let rt_data = fbb.create_vector(&rt_bytes);
    buffers.push(t::Buffer::create(
        &mut fbb,
        &t::BufferArgs {
            data: Some(rt_data),
        },
    ));
    let rt_buffer = buffers.len() as u32 - 1;

    let mut subgraphs = Vec::with_capacity(parts.len());
    for (k, (p, tensor_buffer)) in parts.iter().zip(&tensor_buffers).enumerate() {
        subgraphs.push(subgraph(&mut fbb, p, tensor_buffer, k)?);
    }
    let subgraphs = fbb.create_vector(&subgraphs);

    let codes: Vec<_> = codes
        .iter()
        .map(|&(code, version)| {
            t::OperatorCode::create(
                &mut fbb,
                &t::OperatorCodeArgs {
                    deprecated_builtin_code: code.0.min(127) as i8,
                    custom_code: None,
                    version,
                    builtin_code: code,
                },
            )
        })
        .collect();
    let codes = fbb.create_vector(&codes);

    let signature = signature(&mut fbb, g, &parts[0].inputs, &parts[0].outputs);
    let signatures = fbb.create_vector(&[signature]);
    let meta_name = fbb.create_string("min_runtime_version");
    let meta = t::Metadata::create(
        &mut fbb,
        &t::MetadataArgs {
            name: Some(meta_name),
            buffer: rt_buffer,
        },
    );
    let metadata = fbb.create_vector(&[meta]);
    let buffers = fbb.create_vector(&buffers);
    let description = fbb.create_string(concat!("mdeploy ", env!("CARGO_PKG_VERSION")));
    let model = t::Model::create(
        &mut fbb,
        &t::ModelArgs {
            version: 3,
            operator_codes: Some(codes),
            subgraphs: Some(subgraphs),
            description: Some(description),
            buffers: Some(buffers),
            metadata_buffer: None,
            metadata: Some(metadata),
            signature_defs: Some(signatures),
        },
    );
    fbb.finish(model, Some("TFL3"));
    // The finished bytes are the builder's buffer from `head` on: move them down in place
    // instead of copying the weights into a second buffer.
    let (buf, head) = fbb.collapse();
    // Distances from the end (what the builder knows) to positions in the buffer, file order.
    let holes = holes
        .into_iter()
        .rev()
        .map(|(from_end, data)| (buf.len() - from_end, data))
        .collect();
    Ok(Built { buf, head, holes })
}

/// One subgraph table: its tensors, operators, inputs and outputs (the main one is "main").
fn subgraph<'f>(
    fbb: &mut FlatBufferBuilder<'f>,
    p: &Part,
    tensor_buffer: &[u32],
    k: usize,
) -> Result<WIPOffset<t::SubGraph<'f>>, String> {
    let mut tensors = Vec::with_capacity(p.ts.slots.len());
    for (i, s) in p.ts.slots.iter().enumerate() {
        tensors.push(tensor(fbb, s, tensor_buffer[i])?);
    }
    let mut operators = Vec::with_capacity(p.plan.ops.len());
    for ((op, (ins, outs)), &code_idx) in p.plan.ops.iter().zip(&p.op_io).zip(&p.op_code_index) {
        let (kind, opts) = super::options::build(fbb, op.code, &op.opts)?;
        let inputs = fbb.create_vector(ins);
        let outputs = fbb.create_vector(outs);
        operators.push(t::Operator::create(
            fbb,
            &t::OperatorArgs {
                opcode_index: code_idx,
                inputs: Some(inputs),
                outputs: Some(outputs),
                builtin_options_type: kind,
                builtin_options: opts,
                custom_options: None,
                custom_options_format: t::CustomOptionsFormat::FLEXBUFFERS,
                mutating_variable_inputs: None,
                intermediates: None,
            },
        ));
    }
    let tensors = fbb.create_vector(&tensors);
    let sg_inputs = fbb.create_vector(&p.inputs);
    let sg_outputs = fbb.create_vector(&p.outputs);
    let operators = fbb.create_vector(&operators);
    let sg_name = fbb.create_string(&match k {
        0 => "main".to_string(),
        k => format!("body_{k}"),
    });
    Ok(t::SubGraph::create(
        fbb,
        &t::SubGraphArgs {
            tensors: Some(tensors),
            inputs: Some(sg_inputs),
            outputs: Some(sg_outputs),
            operators: Some(operators),
            name: Some(sg_name),
        },
    ))
}

/// A byte vector whose first byte sits on a 16-byte boundary of the finished file, its length
/// and alignment as `create_vector` gives them, its contents a hole: `holes` gets its distance
/// from the buffer's end and `data`, which `Built::write_to` writes there.
fn aligned_hole<'f, 'p>(
    fbb: &mut FlatBufferBuilder<'f>,
    data: &'p [u8],
    holes: &mut Vec<(usize, &'p [u8])>,
) -> WIPOffset<flatbuffers::Vector<'f, u8>> {
    let used = fbb.unfinished_data().len();
    let pad = (16 - (used + data.len()) % 16) % 16;
    for _ in 0..pad {
        fbb.push(0u8);
    }
    fbb.start_vector::<u8>(data.len());
    skip(fbb, data.len());
    holes.push((fbb.unfinished_data().len(), data));
    fbb.end_vector::<u8>(data.len())
}

/// `N` bytes the builder reserves and never writes.
struct Hole<const N: usize>;

impl<const N: usize> Push for Hole<N> {
    type Output = Hole<N>;
    unsafe fn push(&self, _dst: &mut [u8], _written_len: usize) {}
    fn size() -> usize {
        N
    }
    fn alignment() -> PushAlignment {
        PushAlignment::new(1)
    }
}

/// Reserves `n` bytes (alignment 1: no padding between the pieces) without writing them.
fn skip(fbb: &mut FlatBufferBuilder, mut n: usize) {
    const BIG: usize = 1 << 16;
    while n >= BIG {
        fbb.push(Hole::<BIG>);
        n -= BIG;
    }
    macro_rules! bits {
        ($($b:literal)*) => {$(
            if n & $b != 0 {
                fbb.push(Hole::<$b>);
            }
        )*};
    }
    bits!(32768 16384 8192 4096 2048 1024 512 256 128 64 32 16 8 4 2 1);
}

fn tensor<'f>(
    fbb: &mut FlatBufferBuilder<'f>,
    s: &Slot,
    buffer: u32,
) -> Result<WIPOffset<t::Tensor<'f>>, String> {
    let shape: Vec<i32> =
        s.ty.shape
            .iter()
            .map(|d| d.fixed().map_or(1, |n| n as i32))
            .collect();
    let dynamic = s.ty.shape.iter().any(|d| !d.is_fixed());
    let signature: Option<Vec<i32>> = dynamic.then(|| {
        s.ty.shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n as i32,
                Dim::Sym(_) => -1,
            })
            .collect()
    });
    let shape = fbb.create_vector(&shape);
    let shape_signature = signature.map(|v| fbb.create_vector(&v));
    let quantization = s.quant.map(|q| {
        let scale = fbb.create_vector(&q.scale);
        let zero_point = fbb.create_vector(&q.zero_point);
        t::QuantizationParameters::create(
            fbb,
            &t::QuantizationParametersArgs {
                min: None,
                max: None,
                scale: Some(scale),
                zero_point: Some(zero_point),
                details_type: t::QuantizationDetails::NONE,
                details: None,
                quantized_dimension: q.axis.unwrap_or(0) as i32,
            },
        )
    });
    let name = fbb.create_string(s.name);
    Ok(t::Tensor::create(
        fbb,
        &t::TensorArgs {
            shape: Some(shape),
            type_: tensor_type(s.ty.dtype)?,
            buffer,
            name: Some(name),
            quantization,
            is_variable: s.variable,
            sparsity: None,
            shape_signature,
            has_rank: true,
            variant_tensors: None,
        },
    ))
}

fn signature<'f>(
    fbb: &mut FlatBufferBuilder<'f>,
    g: &Graph,
    inputs: &[i32],
    outputs: &[i32],
) -> WIPOffset<t::SignatureDef<'f>> {
    let mut map = |ids: &[crate::ir::ValueId], idx: &[i32]| {
        let maps: Vec<_> = ids
            .iter()
            .zip(idx)
            .map(|(&v, &i)| {
                let name = fbb.create_string(&g.value(v).name);
                t::TensorMap::create(
                    fbb,
                    &t::TensorMapArgs {
                        name: Some(name),
                        tensor_index: i as u32,
                    },
                )
            })
            .collect();
        fbb.create_vector(&maps)
    };
    let ins = map(&g.inputs, inputs);
    let outs = map(&g.outputs, outputs);
    let key = fbb.create_string(SIGNATURE_KEY);
    t::SignatureDef::create(
        fbb,
        &t::SignatureDefArgs {
            inputs: Some(ins),
            outputs: Some(outs),
            signature_key: Some(key),
            subgraph_index: 0,
        },
    )
}
