//! What to serve and how: the settings `mdeploy serve` takes from flags (and environment
//! variables, through the CLI), and the model config file in TF Serving's
//! `model_config_list` text format, with mdeploy's `traffic_split` added.

use super::textproto::{self, Field};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which versions of a model are served (TF Serving's `model_version_policy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The N highest version numbers.
    Latest(usize),
    All,
    Specific(Vec<u64>),
}

/// One served model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub name: String,
    /// Holds `VERSION/` folders; or, with `single_file`, is the model itself (version 1).
    pub base_path: PathBuf,
    pub single_file: bool,
    pub policy: Policy,
    /// `stable`, `canary`, … → version.
    pub labels: BTreeMap<String, u64>,
    /// Version → weight: a request naming no version goes to one of these with probability
    /// weight / total (sticky per `x-mdeploy-split-key` when the header is given).
    pub split: Vec<(u64, u32)>,
}

impl ModelConfig {
    pub fn new(name: &str, base_path: PathBuf) -> ModelConfig {
        ModelConfig {
            name: name.to_string(),
            base_path,
            single_file: false,
            policy: Policy::Latest(1),
            labels: BTreeMap::new(),
            split: Vec::new(),
        }
    }
}

/// Everything `mdeploy serve` runs with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub models: Vec<ModelConfig>,
    pub host: IpAddr,
    /// `None`: that API is off.
    pub rest_port: Option<u16>,
    pub grpc_port: Option<u16>,
    /// How often model folders are looked at for new, changed and removed versions (zero: only
    /// at start).
    pub poll: Duration,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Inference runs at once (default: the number of cores).
    pub max_concurrency: usize,
    /// Requests per second each client may make (a token bucket with a burst of as many).
    pub rate_limit: Option<f64>,
    /// Bearer tokens and the models each may use.
    pub tokens: Option<super::auth::Tokens>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub access_log: bool,
    /// Dynamic batching, for models whose inputs and outputs all have a run-time first
    /// dimension.
    pub batching: Option<super::BatchConfig>,
}

impl ServeConfig {
    pub fn new(models: Vec<ModelConfig>) -> ServeConfig {
        ServeConfig {
            models,
            host: IpAddr::from([0, 0, 0, 0]),
            rest_port: Some(8501),
            grpc_port: Some(8500),
            poll: Duration::from_secs(2),
            max_body_bytes: 64 << 20,
            request_timeout: Duration::from_secs(30),
            max_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            rate_limit: None,
            tokens: None,
            tls: None,
            access_log: true,
            batching: None,
        }
    }
}

/// Every folder under `root` is a model of that name, latest version served.
pub fn models_in_root(root: &std::path::Path) -> Result<Vec<ModelConfig>> {
    let entries =
        std::fs::read_dir(root).map_err(|e| Error::Usage(format!("{}: {e}", root.display())))?;
    let mut models: Vec<ModelConfig> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            (!name.starts_with('.')).then(|| ModelConfig::new(&name, e.path()))
        })
        .collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    if models.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no model folders (expected MODEL_ROOT/NAME/VERSION/)",
            root.display()
        )));
    }
    Ok(models)
}

/// Parses a `model_config_list { config { … } … }` file. Relative base paths are taken from
/// `root` (the MODEL_ROOT argument).
pub fn parse_model_config(text: &str, root: &std::path::Path) -> Result<Vec<ModelConfig>> {
    let bad = |m: String| Error::Usage(format!("model config: {m}"));
    let fields = textproto::parse(text).map_err(bad)?;
    let list = textproto::messages(&fields, "model_config_list");
    let [list] = list.as_slice() else {
        return Err(bad("expected one model_config_list { … }".into()));
    };
    let mut out = Vec::new();
    for c in textproto::messages(list, "config") {
        out.push(model(c, root).map_err(bad)?);
    }
    if out.is_empty() {
        return Err(bad("model_config_list has no config { … }".into()));
    }
    Ok(out)
}

fn model(c: &[Field], root: &std::path::Path) -> std::result::Result<ModelConfig, String> {
    let name = textproto::scalar(c, "name").ok_or("a config without name")?;
    let base = textproto::scalar(c, "base_path").unwrap_or(name);
    let mut m = ModelConfig::new(name, root.join(base));
    // `model_platform` (TF Serving's only value is "tensorflow") is not read: mdeploy serves
    // every format it reads, whatever it says.
    if let Some(policy) = textproto::messages(c, "model_version_policy").first() {
        m.policy = parse_policy(policy).map_err(|e| format!("model '{name}': {e}"))?;
    }
    for l in textproto::messages(c, "version_labels") {
        let key = textproto::scalar(l, "key").ok_or("version_labels without key")?;
        let v = number(textproto::scalar(l, "value"), "version_labels value")?;
        m.labels.insert(key.to_string(), v);
    }
    for s in textproto::messages(c, "traffic_split") {
        let v = number(textproto::scalar(s, "version"), "traffic_split version")?;
        let w = number(textproto::scalar(s, "weight"), "traffic_split weight")?;
        let w = u32::try_from(w).map_err(|_| format!("traffic_split weight {w} is too large"))?;
        m.split.push((v, w));
    }
    if !m.split.is_empty() && m.split.iter().all(|&(_, w)| w == 0) {
        return Err(format!("model '{name}': every traffic_split weight is 0"));
    }
    Ok(m)
}

fn parse_policy(p: &[Field]) -> std::result::Result<Policy, String> {
    if let Some(l) = textproto::messages(p, "latest").first() {
        let n = match textproto::scalar(l, "num_versions") {
            Some(s) => number(Some(s), "num_versions")? as usize,
            None => 1,
        };
        if n == 0 {
            return Err("latest { num_versions: 0 } serves nothing".into());
        }
        return Ok(Policy::Latest(n));
    }
    if !textproto::messages(p, "all").is_empty() {
        return Ok(Policy::All);
    }
    if let Some(s) = textproto::messages(p, "specific").first() {
        let versions = textproto::scalars(s, "versions")
            .into_iter()
            .map(|v| number(Some(v), "versions"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if versions.is_empty() {
            return Err("specific { } names no versions".into());
        }
        return Ok(Policy::Specific(versions));
    }
    Err("model_version_policy must hold latest, all or specific".into())
}

fn number(s: Option<&str>, what: &str) -> std::result::Result<u64, String> {
    let s = s.ok_or_else(|| format!("{what} is missing"))?;
    s.parse()
        .map_err(|_| format!("{what}: '{s}' is not a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tf_servings_model_config_list_with_labels_and_a_split() {
        let text = r#"
            # TF Serving's format
            model_config_list {
              config {
                name: 'resnet'
                base_path: "/models/resnet"
                model_platform: "tensorflow"
                model_version_policy { specific { versions: 1 versions: 2 } }
                version_labels { key: 'stable' value: 1 }
                version_labels { key: 'canary' value: 2 }
                traffic_split { version: 1 weight: 90 }
                traffic_split { version: 2 weight: 10 }
              }
              config { name: "mlp" model_version_policy { latest { num_versions: 2 } } }
            }"#;
        let m = parse_model_config(text, std::path::Path::new("/root")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].base_path, PathBuf::from("/models/resnet"));
        assert_eq!(m[0].policy, Policy::Specific(vec![1, 2]));
        assert_eq!(m[0].labels["canary"], 2);
        assert_eq!(m[0].split, vec![(1, 90), (2, 10)]);
        assert_eq!(m[1].base_path, PathBuf::from("/root/mlp"));
        assert_eq!(m[1].policy, Policy::Latest(2));
        let err = parse_model_config("model_config_list { config { name: 'a' ", Path::new("/"));
        assert!(err.unwrap_err().to_string().contains("model config"));
    }

    use std::path::Path;
}
