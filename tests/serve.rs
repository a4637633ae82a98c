//! `mdeploy serve` as a client sees it: the real binary on loopback, driven over plain HTTP/1.1
//! (the Python clients — tensorflow-serving-api, tritonclient — run in the conformance tier).
//! Every wait is bounded in time; every server is killed when its test ends.

use crate::common::{repo, tempdir};
use mdeploy::ir::Tensor;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mdeploy serve MODEL --rest-port 0 --no-grpc ARGS…` and waits (at most 60 s) until
/// it is ready.
fn serve(model: &Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .arg("serve")
        .arg(model)
        .args([
            "--rest-port",
            "0",
            "--no-grpc",
            "--host",
            "127.0.0.1",
            "--no-access-log",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut server = Server {
        child,
        port: 0,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let port = server.log.lock().unwrap().iter().find_map(|l| {
            let (_, addr) = l.split_once("REST (")?;
            addr.rsplit(':').next()?.trim().parse::<u16>().ok()
        });
        if let Some(p) = port {
            server.port = p;
            if get(p, "/v2/health/ready").0 == 200 {
                return server;
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "server exited with {status}: {:?}",
                server.log.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server not ready in 60 s: {:?}", server.log.lock().unwrap());
}

/// One HTTP/1.1 request; returns (status, body).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server refusing a large body may close before reading all of it.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, &[], b"")
}

fn post(port: u16, path: &str, body: &str) -> (u16, String) {
    request(
        port,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn mlp() -> (std::path::PathBuf, Tensor, Tensor) {
    let dir = repo().join("fixtures/onnx/mlp");
    let x = mdeploy::npy::read(&dir.join("input.npy")).unwrap();
    let y = mdeploy::npy::read(&dir.join("expected.npy")).unwrap();
    (dir.join("model.onnx"), x, y)
}

fn nested(t: &Tensor) -> serde_json::Value {
    let v = t.to_f64s();
    let cols = t.shape[1];
    serde_json::Value::Array(v.chunks(cols).map(|r| serde_json::json!(r)).collect())
}

fn max_diff(got: &serde_json::Value, want: &Tensor) -> f64 {
    let flat: Vec<f64> = got
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array().map_or_else(
                || vec![r.as_f64().unwrap()],
                |a| a.iter().map(|x| x.as_f64().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(flat.len(), want.len(), "element count");
    flat.iter()
        .zip(want.to_f64s())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// A model root `m/1/model.onnx` holding the MLP fixture.
fn root_with(versions: &[u64]) -> (crate::common::TempDir, std::path::PathBuf) {
    let dir = tempdir();
    let (model, _, _) = mlp();
    for v in versions {
        let d = dir.path().join("m").join(v.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(&model, d.join("model.onnx")).unwrap();
    }
    let root = dir.path().to_path_buf();
    (dir, root)
}

#[test]
fn rest_apis_answer_the_fixtures_expected_outputs() {
    let (model, x, y) = mlp();
    let s = serve(&model, &["--name", "mlp"]);
    let body = serde_json::json!({ "instances": nested(&x) }).to_string();
    let (code, r) = post(s.port, "/v1/models/mlp:predict", &body);
    assert_eq!(code, 200, "{r}");
    assert!(max_diff(&json(&r)["predictions"], &y) < 1e-5);
    let body = serde_json::json!({ "inputs": { "input": nested(&x) } }).to_string();
    let (code, r) = post(s.port, "/v1/models/mlp/versions/1:predict", &body);
    assert_eq!(code, 200, "{r}");
    assert!(max_diff(&json(&r)["outputs"], &y) < 1e-5);
    let body = serde_json::json!({
        "id": "r1",
        "inputs": [{ "name": "input", "datatype": "FP32", "shape": x.shape, "data": x.to_f64s() }]
    })
    .to_string();
    let (code, r) = post(s.port, "/v2/models/mlp/infer", &body);
    assert_eq!(code, 200, "{r}");
    let r = json(&r);
    assert_eq!(r["id"], "r1");
    assert_eq!(r["outputs"][0]["shape"], serde_json::json!(y.shape));
    let got: Vec<f64> = r["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let worst = got
        .iter()
        .zip(y.to_f64s())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "{worst}");
    let (code, r) = get(s.port, "/v1/models/mlp");
    assert_eq!(code, 200);
    assert_eq!(json(&r)["model_version_status"][0]["state"], "AVAILABLE");
    let (code, r) = get(s.port, "/v1/models/mlp/metadata");
    assert_eq!(code, 200);
    let sig = &json(&r)["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"]["input"]["dtype"], "DT_FLOAT");
    let (code, r) = get(s.port, "/metrics");
    assert_eq!(code, 200);
    assert!(
        r.contains(
            "mdeploy_requests_total{model=\"mlp\",version=\"1\",api=\"tfs_rest\",status=\"200\"} 3"
        ),
        "{r}"
    );
    assert!(
        r.contains("mdeploy_request_inference_seconds_bucket"),
        "{r}"
    );
}

#[test]
fn bad_requests_get_their_4xx_naming_the_problem_and_serving_goes_on() {
    let (model, x, _) = mlp();
    let s = serve(&model, &["--name", "mlp", "--max-body-mb", "1"]);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/v1/models/mlp:predict", "{not json".into(), 400, "JSON"),
        ("/v1/models/mlp:predict", r#"{"instances": [[1, 2, 3]]}"#.into(), 400, "input 'input' must have shape"),
        ("/v1/models/mlp:predict", r#"{"inputs": {"other": [1]}}"#.into(), 400, "no input 'other'"),
        ("/v1/models/mlp:predict", r#"{"instances": [[1, [2]]]}"#.into(), 400, "rectangular"),
        ("/v1/models/mlp:predict", r#"{"instances": [{"b64": "AAAA"}]}"#.into(), 400, "b64"),
        ("/v1/models/mlp:predict", r#"{"signature_name": "x", "instances": [[1]]}"#.into(), 400, "signature"),
        ("/v1/models/nope:predict", r#"{"instances": [[1]]}"#.into(), 404, "nope"),
        ("/v1/models/mlp/versions/7:predict", r#"{"instances": [[1]]}"#.into(), 404, "7"),
        ("/v1/models/mlp/labels/canary:predict", r#"{"instances": [[1]]}"#.into(), 404, "canary"),
        (
            "/v2/models/mlp/infer",
            serde_json::json!({"inputs": [{"name": "input", "datatype": "INT64", "shape": x.shape, "data": x.to_f64s()}]}).to_string(),
            400,
            "FP32",
        ),
        (
            "/v2/models/mlp/infer",
            serde_json::json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 31], "data": x.to_f64s()}]}).to_string(),
            400,
            "holds 62 elements",
        ),
        ("/v2/models/mlp/infer", r#"{"inputs": []}"#.into(), 400, "missing input"),
        ("/v3/whatever", "{}".into(), 404, "no such endpoint"),
    ];
    for (path, body, code, needle) in cases {
        let (got, r) = post(s.port, path, &body);
        assert_eq!(got, code, "{path} {body}: {r}");
        let err = json(&r)["error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains(needle), "{path} {body}: {err}");
    }
    let big = format!("{{\"instances\": [{}]}}", "1.0,".repeat(600_000));
    let (code, r) = post(s.port, "/v1/models/mlp:predict", &big);
    assert_eq!(code, 413, "{r}");
    let body = serde_json::json!({ "instances": nested(&x) }).to_string();
    assert_eq!(post(s.port, "/v1/models/mlp:predict", &body).0, 200);
}

#[test]
fn tokens_and_rate_limit_guard_every_api_but_the_probes() {
    let (model, x, _) = mlp();
    let dir = tempdir();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, "# token models\ntok-a mlp\ntok-b other\n").unwrap();
    let s = serve(
        &model,
        &[
            "--name",
            "mlp",
            "--auth-tokens",
            tokens.to_str().unwrap(),
            "--rate-limit",
            "20",
        ],
    );
    let body = serde_json::json!({ "instances": nested(&x) }).to_string();
    let with = |token: &str| {
        let h = format!("Bearer {token}");
        request(
            s.port,
            "POST",
            "/v1/models/mlp:predict",
            &[("Authorization", &h)],
            body.as_bytes(),
        )
        .0
    };
    assert_eq!(post(s.port, "/v1/models/mlp:predict", &body).0, 401);
    assert_eq!(with("wrong"), 401);
    assert_eq!(with("tok-b"), 403);
    assert_eq!(with("tok-a"), 200);
    assert_eq!(get(s.port, "/v2/health/live").0, 200);
    let codes: Vec<u16> = (0..60).map(|_| with("tok-a")).collect();
    assert!(codes.contains(&429), "{codes:?}");
    assert!(codes.iter().all(|c| [200, 429].contains(c)), "{codes:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(with("tok-a"), 200);
}

/// Requests in a loop until `stop`: every answer's (status, model_version).
fn load(
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    x: &Tensor,
) -> std::thread::JoinHandle<Vec<(u16, String)>> {
    let body = serde_json::json!({
        "inputs": [{ "name": "input", "datatype": "FP32", "shape": x.shape, "data": x.to_f64s() }]
    })
    .to_string();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        // Bounded: at most 20 000 requests whatever happens.
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && out.len() < 20_000 {
            let (code, r) = post(port, "/v2/models/m/infer", &body);
            let v = serde_json::from_str::<serde_json::Value>(&r)
                .ok()
                .and_then(|j| j["model_version"].as_str().map(str::to_string));
            out.push((code, v.unwrap_or(r)));
        }
        out
    })
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn version_status(port: u16) -> serde_json::Value {
    json(&get(port, "/v1/models/m").1)
}

fn has_state(port: u16, v: u64, state: &str) -> bool {
    version_status(port)["model_version_status"]
        .as_array()
        .is_some_and(|a| {
            a.iter().any(|s| {
                s["version"].as_str() == Some(v.to_string().as_str()) && s["state"] == state
            })
        })
}

#[test]
fn versions_hot_swap_survive_a_broken_one_and_unload_under_load_without_a_failed_request() {
    let (_dir, root) = root_with(&[1]);
    let (model, x, _) = mlp();
    let s = serve(&root, &["--poll-seconds", "0.2"]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = load(s.port, stop.clone(), &x);
    let m = root.join("m");
    // Hot add: version 2 appears (copied in place, so first seen half-written at worst).
    std::fs::create_dir_all(m.join("2")).unwrap();
    std::fs::copy(&model, m.join("2/model.onnx")).unwrap();
    wait_for("version 2 to serve", 60, || {
        has_state(s.port, 2, "AVAILABLE") && !has_state(s.port, 1, "AVAILABLE")
    });
    // A broken version 3 never takes traffic; version 2 keeps serving.
    std::fs::create_dir_all(m.join("3")).unwrap();
    std::fs::write(
        m.join("3/model.onnx"),
        b"\x08\x07garbage that is not a model",
    )
    .unwrap();
    wait_for("version 3 to fail", 60, || has_state(s.port, 3, "END"));
    assert!(
        has_state(s.port, 2, "AVAILABLE"),
        "{}",
        version_status(s.port)
    );
    // Removal: with 3 and then 2 gone, version 1 is the latest again and takes over.
    std::fs::remove_dir_all(m.join("3")).unwrap();
    std::fs::remove_dir_all(m.join("2")).unwrap();
    wait_for("version 1 to serve again", 60, || {
        has_state(s.port, 1, "AVAILABLE") && !has_state(s.port, 2, "AVAILABLE")
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = worker.join().unwrap();
    let failed: Vec<&(u16, String)> = answers.iter().filter(|(c, _)| *c != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..failed.len().min(5)]
    );
    for v in ["1", "2"] {
        let n = answers.iter().filter(|(_, got)| got == v).count();
        eprintln!("version {v}: {n} of {} answers", answers.len());
        assert!(n > 0, "no answer from version {v}");
    }
    assert!(!answers.iter().any(|(_, got)| got == "3"));
    let log = s.log.lock().unwrap().join("\n");
    assert!(
        log.contains("version 3: not served, it failed to load"),
        "{log}"
    );
    assert!(log.contains("version 2: unloaded"), "{log}");
}

#[test]
fn a_weighted_split_sends_each_version_its_share_and_a_key_sticks() {
    let (_dir, root) = root_with(&[1, 2]);
    let config = root.join("models.config");
    std::fs::write(
        &config,
        "model_config_list { config { name: 'm' base_path: 'm' \
         model_version_policy { all {} } \
         version_labels { key: 'stable' value: 1 } \
         traffic_split { version: 1 weight: 90 } traffic_split { version: 2 weight: 10 } } }",
    )
    .unwrap();
    let (_, x, _) = mlp();
    let s = serve(&root, &["--config", config.to_str().unwrap()]);
    let body = serde_json::json!({
        "inputs": [{ "name": "input", "datatype": "FP32", "shape": x.shape, "data": x.to_f64s() }]
    })
    .to_string();
    let version = |headers: &[(&str, &str)], path: &str| {
        let (code, r) = request(s.port, "POST", path, headers, body.as_bytes());
        assert_eq!(code, 200, "{r}");
        json(&r)["model_version"].as_str().unwrap().to_string()
    };
    let n = 600;
    let second = (0..n)
        .filter(|_| version(&[], "/v2/models/m/infer") == "2")
        .count();
    let share = second as f64 / n as f64;
    // 10 % expected; ±5 points is more than four standard deviations at n = 600.
    assert!((0.05..=0.15).contains(&share), "version 2 got {share}");
    for key in ["user-1", "user-2", "user-3"] {
        let first = version(&[("x-mdeploy-split-key", key)], "/v2/models/m/infer");
        for _ in 0..10 {
            assert_eq!(
                version(&[("x-mdeploy-split-key", key)], "/v2/models/m/infer"),
                first
            );
        }
    }
    assert_eq!(version(&[], "/v2/models/m/versions/2/infer"), "2");
    let (code, r) = post(s.port, "/v1/models/m/labels/stable/metadata", "");
    assert_eq!(code, 404, "{r}");
    let (code, r) = get(s.port, "/v1/models/m/labels/stable/metadata");
    assert_eq!(code, 200, "{r}");
    assert_eq!(json(&r)["model_spec"]["version"], "1");
    let metrics = get(s.port, "/metrics").1;
    assert!(
        metrics.contains("mdeploy_traffic_split_total{model=\"m\",version=\"2\"}"),
        "{metrics}"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let (model, _, _) = mlp();
    let mut s = serve(&model, &["--name", "mlp"]);
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let log = s.log.lock().unwrap().join("\n");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn dynamic_batching_merges_concurrent_requests_and_splits_their_answers() {
    let dir = repo().join("fixtures/onnx/dynamic_batch");
    let x = mdeploy::npy::read(&dir.join("input.npy")).unwrap();
    let y = mdeploy::npy::read(&dir.join("expected.npy")).unwrap();
    let s = serve(
        &dir.join("model.onnx"),
        &[
            "--name",
            "m",
            "--max-batch-size",
            "16",
            "--batch-timeout-ms",
            "50",
            "--max-concurrency",
            "1",
        ],
    );
    let body = serde_json::json!({
        "inputs": [{ "name": "input", "datatype": "FP32", "shape": x.shape, "data": x.to_f64s() }]
    })
    .to_string();
    let port = s.port;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| post(port, "/v2/models/m/infer", &body))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for w in workers {
        for (code, r) in w.join().unwrap() {
            assert_eq!(code, 200, "{r}");
            let r = json(&r);
            assert_eq!(r["outputs"][0]["shape"], serde_json::json!(y.shape));
            let got: Vec<f64> = r["outputs"][0]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let worst = got
                .iter()
                .zip(y.to_f64s())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-4, "{worst}");
        }
    }
    let metrics = get(s.port, "/metrics").1;
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    // Batch-size buckets are powers of two: the smallest holding one request's rows.
    let rows = x.shape[0].next_power_of_two();
    assert!(
        rows * 2 <= 16,
        "the fixture's batch is too large for this test"
    );
    let alone = value(&format!(
        "mdeploy_batch_size_bucket{{model=\"m\",le=\"{rows}\"}}"
    ));
    let all = value("mdeploy_batch_size_count{model=\"m\"}");
    assert_eq!(all, 40.0);
    // With one inference slot and a 50 ms window, most of the 40 requests share a run.
    assert!(
        alone < all / 2.0,
        "{alone} of {all} requests ran with only their own rows"
    );
}
