// Runs a TF.js model folder written by mdeploy in @tensorflow/tfjs (pure-JS CPU backend).
//
//   node tfjs_run.js MODEL_DIR OUT_DIR INPUT.npy...
//
// Loads MODEL_DIR/model.json and the shards its weightsManifest names through an IO handler of
// our own (each shard an ArrayBuffer, in manifest order, as the HTTP loader hands them over), so
// the stock manifest parsing, shard concatenation and dequantization run. `format` chooses
// tf.loadLayersModel or tf.loadGraphModel. Inputs are given by position:
//   layers model: the model's inputs (Keras `input_layers` order);
//   graph model: the signature's inputs ordered by their Placeholder nodes' order in the graph
//                (mdeploy writes Placeholders in the source's input order; the signature is a
//                JSON object whose key order is not the source's).
// Outputs are written as OUT_DIR/output_<i>.npy (float32, int32 or bool), in the order of the
// model's outputs (layers) or of the signature outputs' nodes in the graph (graph); stdout gets a
// JSON line describing them.
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)[1];
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const body = buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length);
  const n = shape.reduce((a, b) => a * b, 1);
  let values;
  switch (descr) {
    case '<f4': values = new Float32Array(body, 0, n); return { values, shape, kind: 'float' };
    case '<f8': values = Float32Array.from(new Float64Array(body, 0, n)); return { values, shape, kind: 'float' };
    case '<f2': {
      const h = new Uint16Array(body, 0, n);
      values = Float32Array.from(h, halfToFloat);
      return { values, shape, kind: 'float' };
    }
    case '<i4': values = new Int32Array(body, 0, n); return { values, shape, kind: 'int' };
    case '<i8': values = Int32Array.from(new BigInt64Array(body, 0, n), (x) => Number(x)); return { values, shape, kind: 'int' };
    case '|i1': values = Int32Array.from(new Int8Array(body, 0, n)); return { values, shape, kind: 'int' };
    case '|u1': values = Int32Array.from(new Uint8Array(body, 0, n)); return { values, shape, kind: 'int' };
    case '|b1': values = Uint8Array.from(new Uint8Array(body, 0, n)); return { values, shape, kind: 'bool' };
    default: throw new Error(`${file}: unsupported npy dtype ${descr}`);
  }
}

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * Math.pow(2, e - 15) * (1 + f / 1024);
}

function writeNpy(file, data, shape, dtype) {
  const descr = { float32: '<f4', int32: '<i4', bool: '|b1' }[dtype];
  if (!descr) throw new Error(`output of dtype ${dtype} cannot be written`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  // The CPU backend's cast to a wider type shares the input's buffer: a bool tensor cast to
  // float32 still holds a Uint8Array, so the values are converted to the dtype's array here.
  const typed =
    dtype === 'bool'
      ? Uint8Array.from(data, (x) => (x ? 1 : 0))
      : dtype === 'float32'
        ? Float32Array.from(data)
        : Int32Array.from(data);
  const body = Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

/** An IO handler reading model.json and its shards from a folder. */
function folderHandler(dir) {
  return {
    load: async () => {
      const modelJSON = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const buffers = [];
        for (const group of manifest) {
          for (const p of group.paths) {
            const b = fs.readFileSync(path.join(dir, p));
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
          }
        }
        return [tf.io.getWeightSpecs(manifest), buffers];
      });
    },
  };
}

function toTensor(npy, dtype) {
  const want = dtype || (npy.kind === 'float' ? 'float32' : npy.kind === 'bool' ? 'bool' : 'int32');
  let values = npy.values;
  if (want === 'float32' && !(values instanceof Float32Array)) values = Float32Array.from(values);
  if (want === 'int32' && !(values instanceof Int32Array)) values = Int32Array.from(values);
  return tf.tensor(values, npy.shape, want);
}

const TF_DTYPES = { DT_FLOAT: 'float32', DT_INT32: 'int32', DT_BOOL: 'bool' };

async function main() {
  const [dir, outDir, ...inputFiles] = process.argv.slice(2);
  if (!dir || !outDir) throw new Error('usage: node tfjs_run.js MODEL_DIR OUT_DIR INPUT.npy...');
  await tf.setBackend('cpu');
  const modelJSON = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const inputs = inputFiles.map(readNpy);
  let outputs;
  let names;
  if (modelJSON.format === 'layers-model') {
    const model = await tf.loadLayersModel(folderHandler(dir));
    if (model.inputs.length !== inputs.length) {
      throw new Error(`model has ${model.inputs.length} inputs, the case has ${inputs.length}`);
    }
    const xs = inputs.map((x, i) => toTensor(x, model.inputs[i].dtype));
    const y = model.predict(xs.length === 1 ? xs[0] : xs);
    outputs = Array.isArray(y) ? y : [y];
    names = model.outputNames;
  } else if (modelJSON.format === 'graph-model') {
    const model = await tf.loadGraphModel(folderHandler(dir));
    const sig = modelJSON.signature || {};
    const nodeIndex = {};
    modelJSON.modelTopology.node.forEach((n, i) => { nodeIndex[n.name] = i; });
    const byNode = (entries) => Object.keys(entries || {}).sort(
      (a, b) => nodeIndex[entries[a].name.split(':')[0]] - nodeIndex[entries[b].name.split(':')[0]]);
    const inKeys = byNode(sig.inputs);
    const outKeys = byNode(sig.outputs);
    if (inKeys.length !== inputs.length) {
      throw new Error(`model has ${inKeys.length} inputs, the case has ${inputs.length}`);
    }
    const feed = {};
    inKeys.forEach((k, i) => { feed[k] = toTensor(inputs[i], TF_DTYPES[sig.inputs[k].dtype]); });
    const y = await model.executeAsync(feed, outKeys);
    outputs = Array.isArray(y) ? y : [y];
    names = outKeys;
  } else {
    throw new Error(`model.json: unknown format ${JSON.stringify(modelJSON.format)}`);
  }
  const described = [];
  for (let i = 0; i < outputs.length; i++) {
    const t = outputs[i];
    writeNpy(path.join(outDir, `output_${i}.npy`), await t.data(), t.shape, t.dtype);
    described.push({ name: names[i], shape: t.shape, dtype: t.dtype });
  }
  process.stdout.write(JSON.stringify({ format: modelJSON.format, outputs: described }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`tfjs: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
