"""Load generator and probes for `cargo xtask bench serve` (figures only, no assertions).

  run --model M.onnx --input X.npy --name NAME --proto rest|tfs-grpc|kserve-grpc --addr HOST:PORT
      --conc 1,8,32 --seconds S --max-requests N --server-pid PID [--metrics HOST:PORT]
      One warm-up request (its answer compared with onnxruntime in-process: `check max_abs=`),
      then per concurrency C: C client threads, each with its own keep-alive connection (HTTP/1.1)
      or channel (gRPC), sending the same request back to back until S seconds or N requests in
      all. Prints `cell conc= n= errors= wall_s= rps= p50_ms= p99_ms= client_cpu= server_cpu=
      [infer_ms=]` per cell (cpu = cores busy: CPU seconds over wall seconds; server = PID and its
      descendants; infer_ms = mean of mdeploy's inference histogram over the cell) and
      `server rss_mb= hwm_mb=` (summed over the process tree) before and after the cells.
  ort --model M.onnx --input X.npy --runs N
      onnxruntime session.run time in this process, batch 1: `ort_default mean_ms= p50_ms=` and
      the same with one intra-op thread (`ort_1thread`).
  hotadd --root ROOT --name NAME --model M.onnx --input X.npy --addr HOST:PORT
      Copies M into ROOT/NAME/.staging/, renames that to ROOT/NAME/2 (an atomic appearance, as a
      deployment script would), then POSTs to /v1/models/NAME/versions/2:predict every 10 ms;
      prints `hotadd seconds=` from the rename to the first 200.
"""
import argparse
import http.client
import json
import os
import re
import resource
import shutil
import sys
import threading
import time

import numpy as np

TICK = os.sysconf("SC_CLK_TCK")


# ---- a minimal protobuf encoder/decoder (the requests are built once, outside the timing) ----

def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):
    """A length-delimited field (strings, bytes, messages, packed repeated)."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vint_field(num, n):
    return varint(num << 3) + varint(n)


def parse(buf):
    """Top-level fields of a message as (number, value) pairs; length-delimited values as bytes."""
    out, i = [], 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        else:
            raise ValueError(f"wire type {wt}")
        out.append((num, v))
    return out


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def tfs_request(name, input_name, x):
    dtype = 9 if x.dtype == np.int64 else 1  # DT_INT64, DT_FLOAT
    shape = b"".join(field(2, vint_field(1, d)) for d in x.shape)
    tensor = vint_field(1, dtype) + field(2, shape) + field(4, x.tobytes())
    entry = field(1, input_name.encode()) + field(2, tensor)
    return field(1, field(1, name.encode())) + field(2, entry)


def tfs_output(resp):
    for num, entry in parse(resp):
        if num == 1:
            tensor = dict(parse(dict(parse(entry))[2]))
            return np.frombuffer(tensor[4], np.float32)
    raise ValueError("no outputs")


def kserve_request(name, input_name, x):
    dtype = b"INT64" if x.dtype == np.int64 else b"FP32"
    shape = b"".join(varint(d) for d in x.shape)
    tensor = field(1, input_name.encode()) + field(2, dtype) + field(3, shape)
    return field(1, name.encode()) + field(5, tensor) + field(7, x.tobytes())


def kserve_output(resp):
    raw = [v for num, v in parse(resp) if num == 6]
    return np.frombuffer(raw[0], np.float32)


# ---- clients: each returns a callable sending one request and returning the answer's bytes ----

def rest_client(addr, path, body):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Content-Type": "application/json"}

    def once():
        conn.request("POST", path, body, headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
        return data

    def send():
        try:
            return once()
        except (http.client.HTTPException, OSError):
            # A keep-alive connection the server closed (uvicorn drops idle ones after 5 s): a
            # fresh connection and one retry, as HTTP client pools do; a second failure counts.
            conn.close()
            return once()

    return send


def grpc_client(addr, method, body):
    import grpc

    # One channel per client thread, as separate clients would have; no retries, big messages.
    ch = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 1 << 28),
                                              ("grpc.max_send_message_length", 1 << 28),
                                              ("grpc.use_local_subchannel_pool", 1)])
    call = ch.unary_unary(method)
    return lambda: call(body, timeout=120)


def make_client(a, x):
    input_name = ort_session(a.model).get_inputs()[0].name
    if a.proto == "rest":
        body = json.dumps({"instances": x.tolist()}).encode()
        return (lambda: rest_client(a.addr, f"/v1/models/{a.name}:predict", body),
                lambda r: np.asarray(json.loads(r)["predictions"], np.float32).ravel())
    if a.proto == "tfs-grpc":
        body = tfs_request(a.name, input_name, x)
        return (lambda: grpc_client(a.addr, "/tensorflow.serving.PredictionService/Predict", body),
                tfs_output)
    body = kserve_request(a.name, input_name, x)
    return (lambda: grpc_client(a.addr, "/inference.GRPCInferenceService/ModelInfer", body),
            kserve_output)


# ---- process-tree CPU and memory from /proc ----

def tree(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_cpu(root):
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / TICK


def tree_mem(root):
    rss = hwm = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, hwm / 1024


def inference_histogram(addr):
    """(sum seconds, count) of mdeploy's inference-time histogram, over every label set."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    s = sum(float(v) for v in re.findall(r"^mdeploy_request_inference_seconds_sum\S* (\S+)$", text, re.M))
    n = sum(float(v) for v in re.findall(r"^mdeploy_request_inference_seconds_count\S* (\S+)$", text, re.M))
    return s, n


# ---- the load ----

def cell(new_client, conc, seconds, max_requests):
    lat, errors, lock = [], [0], threading.Lock()
    budget = [max_requests]
    # Every client connects and sends one request (in parallel) before the clock starts.
    clock = {}

    def go():  # run by the barrier once everyone is there, before anyone is released
        clock["start"] = time.perf_counter()
        clock["deadline"] = clock["start"] + seconds

    ready = threading.Barrier(conc + 1, action=go)

    def worker():
        mine, bad = [], 0
        try:
            send = new_client()
            send()
        except Exception as e:  # a client that cannot start counts one error and sits out
            bad, send = 1, None
            print(f"error: {e}", file=sys.stderr)
        ready.wait()
        while send and time.perf_counter() < clock["deadline"]:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            t = time.perf_counter()
            try:
                send()
                mine.append(time.perf_counter() - t)
            except Exception as e:  # counted, and the first few shown: figures only
                bad += 1
                if bad <= 2:
                    print(f"error: {e}", file=sys.stderr)
        with lock:
            lat.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join()
    return lat, errors[0], time.perf_counter() - clock["start"]


def run(a):
    x = np.load(a.input)
    new_client, decode = make_client(a, x)
    first = new_client()()
    want = ort_session(a.model).run(None, {ort_session(a.model).get_inputs()[0].name: x})[0]
    try:
        print(f"check max_abs={np.abs(decode(first) - want.ravel()).max():.3e}")
    except Exception as e:  # the check is informative only
        print(f"check failed={type(e).__name__}")
    rss, hwm = tree_mem(a.server_pid)
    print(f"server rss_mb={rss:.1f} hwm_mb={hwm:.1f}", flush=True)
    for conc in [int(c) for c in a.conc.split(",")]:
        cpu0, scpu0 = self_cpu(), tree_cpu(a.server_pid)
        h0 = inference_histogram(a.metrics) if a.metrics else None
        lat, errors, wall = cell(new_client, conc, a.seconds, a.max_requests)
        cpu1, scpu1 = self_cpu(), tree_cpu(a.server_pid)
        line = (f"cell conc={conc} n={len(lat)} errors={errors} wall_s={wall:.3f} "
                f"rps={len(lat) / wall:.2f} p50_ms={pct(lat, 50):.3f} p99_ms={pct(lat, 99):.3f} "
                f"client_cpu={(cpu1 - cpu0) / wall:.2f} server_cpu={(scpu1 - scpu0) / wall:.2f}")
        if h0:
            h1 = inference_histogram(a.metrics)
            if h1[1] > h0[1]:
                line += f" infer_ms={(h1[0] - h0[0]) / (h1[1] - h0[1]) * 1e3:.3f}"
        print(line, flush=True)
    rss, hwm = tree_mem(a.server_pid)
    print(f"server rss_mb={rss:.1f} hwm_mb={hwm:.1f}", flush=True)


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1e3, q)) if xs else float("nan")


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


_sessions = {}


def ort_session(path):
    import onnxruntime as ort

    if path not in _sessions:
        _sessions[path] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return _sessions[path]


def ort_time(a):
    """Mean and median session.run time, default session options and one intra-op thread (tract
    runs each request on one thread)."""
    import onnxruntime as ort

    x = np.load(a.input)
    for label, threads in [("default", 0), ("1thread", 1)]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        s = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
        feed = {s.get_inputs()[0].name: x}
        for _ in range(3):
            s.run(None, feed)
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            s.run(None, feed)
            times.append(time.perf_counter() - t)
        print(f"ort_{label} mean_ms={np.mean(times) * 1e3:.3f} p50_ms={pct(times, 50):.3f}")


def hotadd(a):
    x = np.load(a.input)
    staging = os.path.join(a.root, a.name, ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    shutil.copy(a.model, os.path.join(staging, os.path.basename(a.model)))
    body = json.dumps({"instances": x.tolist()}).encode()
    send = rest_client(a.addr, f"/v1/models/{a.name}/versions/2:predict", body)
    os.rename(staging, os.path.join(a.root, a.name, "2"))
    start = time.perf_counter()
    while time.perf_counter() - start < a.timeout:
        try:
            send()
            print(f"hotadd seconds={time.perf_counter() - start:.3f}")
            return
        except Exception:
            time.sleep(0.01)
            send = rest_client(a.addr, f"/v1/models/{a.name}/versions/2:predict", body)
    print("hotadd seconds=nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["run", "ort", "hotadd"])
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--name")
    p.add_argument("--proto", default="rest")
    p.add_argument("--addr")
    p.add_argument("--conc", default="1,8,32")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--max-requests", type=int, default=5000)
    p.add_argument("--server-pid", type=int)
    p.add_argument("--metrics")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--root")
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    {"run": run, "ort": ort_time, "hotadd": hotadd}[a.mode](a)


if __name__ == "__main__":
    main()
