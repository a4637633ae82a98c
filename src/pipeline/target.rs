//! Which format and writer a run writes, and where: the target when none is given, the default
//! output path, and the TF.js layers/graph choice.

use super::options::{Job, Options, Target};
use super::{Loaded, Observer};
use crate::error::{Error, Result};
use crate::formats::keras::KerasSource;
use crate::ir::Graph;
use crate::readers::{self, ReadOptions};
use crate::writers::onnx::{ExternalData, OnnxWriter};
use crate::writers::saved_model::SavedModelWriter;
use crate::writers::tfjs::{self, FolderOptions, TfjsFormat, WeightQuant};
use crate::writers::tflite::TfliteWriter;
use crate::writers::Writer;
use std::path::{Path, PathBuf};

/// The target asked for, or the input's format (the reader's name) when mdeploy writes it
/// (ONNX otherwise).
pub(super) fn resolve(opts: &Options, format: &str, obs: &dyn Observer) -> Target {
    if let Some(t) = opts.target {
        return t;
    }
    let t = match format {
        "tflite" => Target::Tflite,
        _ => Target::Onnx,
    };
    if opts.job == Job::Quantize {
        obs.line(&format!(
            "no --to given: writing {} ({})",
            t.name(),
            if format == t.name() {
                "the input's format"
            } else {
                "mdeploy does not write the input's format"
            }
        ));
    }
    t
}

/// The output path (explicit, or [`default_output`]); never the input itself.
pub(super) fn output_path(opts: &Options, target: Target) -> Result<PathBuf> {
    let out = match &opts.output {
        Some(o) => o.clone(),
        None => default_output(&opts.input, target, opts.job, opts.quantize.as_ref()),
    };
    refuse_clobbering(&out, &opts.input, target)?;
    Ok(out)
}

/// Refuses an output path that would overwrite the input or a file inside it (a SavedModel or
/// TF.js folder being read), or whose existing kind does not match the target's: a folder where
/// a file goes (ONNX, TFLite), a file where a TF.js folder goes.
fn refuse_clobbering(out: &Path, input: &Path, target: Target) -> Result<()> {
    let usage = |why: &str| Err(Error::Usage(format!("{}: {why}", out.display())));
    let input = input.canonicalize().ok();
    // The output may not exist yet: judge by its folder, which must.
    let resolved = match out.canonicalize() {
        Ok(p) => Some(p),
        Err(_) => out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .canonicalize()
            .ok()
            .and_then(|d| out.file_name().map(|n| d.join(n))),
    };
    if let (Some(o), Some(i)) = (&resolved, &input) {
        if o == i {
            return usage("output would overwrite the input");
        }
        if i.is_dir() && o.starts_with(i) {
            return usage("output would be written inside the input model's folder");
        }
        if o.is_dir() && i.starts_with(o) && target.is_folder() {
            return usage("output folder holds the input model");
        }
    }
    // Files the input names (ONNX external data, TF.js shards) are read too: neither the
    // output nor the `.data` file an ONNX output may take beside it can replace one.
    if let Some(o) = &resolved {
        let sidecar = o.with_file_name(format!(
            "{}.data",
            o.file_name().unwrap_or_default().to_string_lossy()
        ));
        for read in crate::ir::mapped::files_mapped() {
            let hit = read == *o
                || (target.is_folder() && read.starts_with(o))
                || (target == Target::Onnx && read == sidecar);
            if hit {
                return usage(&format!(
                    "output would replace {}, which the input model reads",
                    read.display()
                ));
            }
        }
    }
    match (out.is_dir(), out.exists(), target) {
        (true, _, Target::Onnx | Target::Tflite) => {
            usage("is a folder; this target writes a file (give a file path)")
        }
        (false, true, Target::Tfjs | Target::SavedModel) => {
            usage("is a file; this target writes a folder (give a folder path)")
        }
        _ => Ok(()),
    }
}

/// Where the output goes without an explicit path, beside the input: `net.onnx` →
/// `net.tflite`, `net_converted.onnx` (same format), `net_tfjs/`; `net_int8.onnx` /
/// `net_float16.onnx` for the quantize job; `net_optimized.onnx` / `net_optimized_tfjs/` for
/// the optimize job.
pub fn default_output(
    input: &Path,
    target: Target,
    job: Job,
    quantize: Option<&super::Quantize>,
) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let ext = target.name();
    let tag = match (job, quantize.map(|q| q.mode)) {
        (Job::Convert, _) => None,
        (Job::Quantize, Some(crate::passes::quantize::Mode::Float16)) => Some("float16"),
        (Job::Quantize, _) => Some("int8"),
        (Job::Optimize, _) => Some("optimized"),
    };
    match (tag, target) {
        // A folder: `net.onnx` → `net_tfjs/`, `saved_model/` → `saved_model_tfjs/`.
        (None, Target::Tfjs | Target::SavedModel) => input.with_file_name(format!("{stem}_{ext}")),
        (Some(tag), Target::Tfjs | Target::SavedModel) => {
            input.with_file_name(format!("{stem}_{tag}_{ext}"))
        }
        (Some(tag), _) => input.with_file_name(format!("{stem}_{tag}.{ext}")),
        (None, _) => {
            let candidate = input.with_file_name(format!("{stem}.{ext}"));
            if candidate == input {
                input.with_file_name(format!("{stem}_converted.{ext}"))
            } else {
                candidate
            }
        }
    }
}

/// The writer of a run, and whether its output is the IR as written (a TF.js layers model is
/// written from the Keras model itself, so there is no graph to run for `--verify`).
pub(super) struct Chosen {
    pub writer: Box<dyn Writer>,
    pub target: Target,
    pub layers: bool,
}

pub(super) fn writer(
    opts: &Options,
    target: Target,
    source: &Loaded,
    from_ir: bool,
    obs: &dyn Observer,
) -> Result<Chosen> {
    let writer: Box<dyn Writer> = match target {
        Target::Onnx => Box::new(OnnxWriter {
            opset: opts.onnx.opset,
            external: if opts.onnx.external_data {
                ExternalData::Always
            } else {
                ExternalData::Auto
            },
        }),
        Target::Tflite => Box::new(TfliteWriter {
            nhwc_io: opts.tflite.nhwc_io,
        }),
        Target::Tfjs => return tfjs_writer(opts, source, from_ir, obs),
        Target::SavedModel => {
            if opts.quantize.is_some() {
                return Err(Error::Usage(
                    "--int8/--float16: a SavedModel is written with float weights (TF Serving \
                     runs float graphs); quantize for --to onnx, tflite or tfjs"
                        .into(),
                ));
            }
            Box::new(SavedModelWriter)
        }
    };
    Ok(Chosen {
        writer,
        target,
        layers: false,
    })
}

/// How the TF.js manifest stores float weights: `--int8`/`--float16` quantize them there (the
/// loader dequantizes them; the IR stays float).
fn tfjs_folder(opts: &Options) -> Result<FolderOptions> {
    let quant =
        match &opts.quantize {
            Some(q) if q.calibration.is_some() => return Err(Error::Usage(
                "--calibration: TF.js models keep float activations (their weights are quantized \
                 in the manifest); full-integer int8 is for --to onnx and --to tflite"
                    .into(),
            )),
            Some(q) => match q.mode {
                crate::passes::quantize::Mode::Int8 => WeightQuant::Uint8,
                crate::passes::quantize::Mode::Float16 => WeightQuant::Float16,
            },
            None => opts.tfjs.weights,
        };
    Ok(FolderOptions {
        shard_size: opts.tfjs.shard_size,
        quant,
    })
}

/// A layers model for Keras sources whose layers tfjs-layers all has (unless a graph model is
/// asked for, or the weights were transformed in the IR); a graph model otherwise, with a
/// warning naming what tfjs-layers lacks.
fn tfjs_writer(
    opts: &Options,
    source: &Loaded,
    from_ir: bool,
    obs: &dyn Observer,
) -> Result<Chosen> {
    let folder = tfjs_folder(opts)?;
    let format = opts.tfjs.format;
    if format == TfjsFormat::Layers && source.keras.is_none() {
        return Err(Error::Usage(format!(
            "--tfjs-format layers needs a Keras source; {} is {}",
            opts.input.display(),
            source.format
        )));
    }
    // An optimized graph (its fusions, pruned or clustered weights) lives in the IR, which
    // only a graph model is written from.
    let keras = match &source.keras {
        Some(k) if format != TfjsFormat::Graph && !from_ir => Some(k),
        _ => None,
    };
    let layers = keras.map(|k| (k.clone(), layers_shapes(opts, source, k)));
    let lacking = match &layers {
        Some((k, shapes)) => tfjs::layers::check(k, shapes, &opts.input),
        None => vec![],
    };
    if format == TfjsFormat::Layers && !lacking.is_empty() {
        return Err(Error::Unsupported {
            file: opts.input.display().to_string(),
            items: lacking,
        });
    }
    if layers.is_some() && !lacking.is_empty() {
        let mut msg =
            String::from("tfjs-layers cannot hold this model, writing a graph model instead:");
        for u in &lacking {
            msg.push_str(&format!("\n  {u}"));
        }
        obs.warn(&msg);
    }
    let (writer, layers): (Box<dyn Writer>, bool) = match layers {
        Some((source, shapes)) if lacking.is_empty() => (
            Box::new(tfjs::LayersWriter {
                source,
                shapes,
                file: opts.input.clone(),
                folder,
            }),
            true,
        ),
        _ => (
            Box::new(tfjs::graph::GraphWriter {
                folder,
                generated_by: Some(source.format.to_string()),
            }),
            false,
        ),
    };
    Ok(Chosen {
        writer,
        target: Target::Tfjs,
        layers,
    })
}

/// The shapes the layers writer looks layers' outputs up in: the source graph, or, when input
/// shapes were overridden, the graph of the config's own input shapes (the layers topology
/// keeps those), built again from the opened source without reading the file.
fn layers_shapes(opts: &Options, source: &Loaded, keras: &KerasSource) -> Graph {
    if opts.read.input_shapes.is_empty() {
        return source.graph.clone();
    }
    // A failure leaves the shapes unknown: each layer needing one is then listed by the check.
    readers::keras::build_graph(keras, &opts.input, &ReadOptions::default()).unwrap_or_default()
}
