"""The serving APIs as their real clients call them: one function per API, taking the served
model's name, its signature (KServe v2 metadata: inputs and outputs in the graph's order) and the
inputs by position, returning the outputs in the signature's order."""

from __future__ import annotations

import threading

import numpy as np

from common import CaseError

TIMEOUT = 120.0  # seconds per request; debug builds of big models take a few seconds
MAX_GRPC_MESSAGE = 256 << 20

_local = threading.local()  # clients are per thread (tritonclient's are not thread-safe)


def triton_http(server):
    import tritonclient.http as httpclient

    key = ("http", server.rest_port)
    if getattr(_local, "clients", None) is None:
        _local.clients = {}
    if key not in _local.clients:
        _local.clients[key] = httpclient.InferenceServerClient(
            f"127.0.0.1:{server.rest_port}", connection_timeout=TIMEOUT, network_timeout=TIMEOUT
        )
    return _local.clients[key]


def triton_grpc(server):
    import tritonclient.grpc as grpcclient

    key = ("grpc", server.grpc_port)
    if getattr(_local, "clients", None) is None:
        _local.clients = {}
    if key not in _local.clients:
        _local.clients[key] = grpcclient.InferenceServerClient(server.grpc_target())
    return _local.clients[key]


def tfs_channel(server, credentials=None):
    import grpc

    options = [
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
    ]
    if credentials is not None:
        return grpc.secure_channel(server.grpc_target(), credentials, options=options)
    return grpc.insecure_channel(server.grpc_target(), options=options)


def close_clients() -> None:
    for client in (getattr(_local, "clients", None) or {}).values():
        try:
            client.close()
        except Exception:
            pass
    _local.clients = {}


def metadata(server, name: str) -> dict:
    """KServe v2 model metadata through tritonclient.http."""
    return triton_http(server).get_model_metadata(name)


def _names(meta: dict, kind: str) -> list[str]:
    return [t["name"] for t in meta[kind]]


def _check_arity(meta: dict, inputs: list) -> None:
    if len(meta["inputs"]) != len(inputs):
        n = len(meta["inputs"])
        raise CaseError(f"the served model has {n} inputs, the case {len(inputs)}")


# ---------------------------------------------------------------- TF Serving REST v1


def _json_value(x: np.ndarray):
    return x.tolist()


def _as_array(value, dtype: str) -> np.ndarray:
    return np.asarray(value, dtype=np.float64 if dtype not in ("BOOL",) else np.bool_)


def tfs_rest_inputs(server, name: str, meta: dict, inputs: list) -> list:
    """`POST /v1/models/NAME:predict` with a columnar `inputs` body (a dict by input name)."""
    _check_arity(meta, inputs)
    body = {"inputs": {n: _json_value(x) for n, x in zip(_names(meta, "inputs"), inputs)}}
    status, reply = server.http("POST", f"/v1/models/{name}:predict", body, timeout=TIMEOUT)
    if status != 200:
        raise CaseError(f"HTTP {status}: {str(reply)[:200]}")
    outputs = reply.get("outputs") if isinstance(reply, dict) else None
    if outputs is None:
        raise CaseError(f"no 'outputs' in the reply: {str(reply)[:200]}")
    out_names = _names(meta, "outputs")
    if len(out_names) == 1 and not (isinstance(outputs, dict) and out_names[0] in outputs):
        outputs = {out_names[0]: outputs}
    return [_as_array(outputs[n], t["datatype"]) for n, t in zip(out_names, meta["outputs"])]


def batch_of(inputs: list) -> int | None:
    """The row count every input shares (TF Serving's `instances` splits every input along its
    first dimension), or None when they do not share one."""
    firsts = {np.shape(x)[0] if np.ndim(x) else None for x in inputs}
    return firsts.pop() if len(firsts) == 1 and None not in firsts else None


def tfs_rest_instances(server, name: str, meta: dict, inputs: list) -> list:
    """`POST /v1/models/NAME:predict` with a row (`instances`) body: one object per row naming
    every input (a bare row when the model has one input); the reply's `predictions` are rows."""
    _check_arity(meta, inputs)
    rows = batch_of(inputs)
    if rows is None:
        raise CaseError("the inputs do not share a first dimension")
    in_names = _names(meta, "inputs")
    if len(inputs) == 1:
        instances = _json_value(inputs[0])
    else:
        instances = [{n: _json_value(x[i]) for n, x in zip(in_names, inputs)} for i in range(rows)]
    status, reply = server.http(
        "POST", f"/v1/models/{name}:predict", {"instances": instances}, timeout=TIMEOUT
    )
    if status != 200:
        raise CaseError(f"HTTP {status}: {str(reply)[:200]}")
    preds = reply.get("predictions") if isinstance(reply, dict) else None
    if not isinstance(preds, list):
        raise CaseError(f"no 'predictions' list in the reply: {str(reply)[:200]}")
    out_names = _names(meta, "outputs")
    if len(out_names) == 1:
        return [_as_array(preds, meta["outputs"][0]["datatype"])]
    if not all(isinstance(p, dict) for p in preds):
        raise CaseError("predictions of a model with several outputs are not objects")
    return [
        _as_array([p[n] for p in preds], t["datatype"]) for n, t in zip(out_names, meta["outputs"])
    ]


# ---------------------------------------------------------------- KServe v2 (tritonclient)


def _kserve_request(module, meta: dict, inputs: list, binary: bool):
    _check_arity(meta, inputs)
    from tritonclient.utils import np_to_triton_dtype

    infer_inputs = []
    for spec, x in zip(meta["inputs"], inputs):
        x = np.ascontiguousarray(x)
        i = module.InferInput(spec["name"], list(x.shape), np_to_triton_dtype(x.dtype))
        if module.__name__.endswith("http"):
            i.set_data_from_numpy(x, binary_data=binary)
        else:
            i.set_data_from_numpy(x)
        infer_inputs.append(i)
    if module.__name__.endswith("http"):
        outs = [module.InferRequestedOutput(n, binary_data=binary) for n in _names(meta, "outputs")]
    else:
        outs = [module.InferRequestedOutput(n) for n in _names(meta, "outputs")]
    return infer_inputs, outs


def _kserve_outputs(result, meta: dict) -> list:
    got = []
    for n in _names(meta, "outputs"):
        x = result.as_numpy(n)
        if x is None:
            raise CaseError(f"no output '{n}' in the reply")
        got.append(x)
    return got


def kserve_http(binary: bool):
    def call(server, name: str, meta: dict, inputs: list) -> list:
        import tritonclient.http as httpclient

        infer_inputs, outs = _kserve_request(httpclient, meta, inputs, binary)
        result = triton_http(server).infer(name, infer_inputs, outputs=outs)
        return _kserve_outputs(result, meta)

    return call


def kserve_grpc(server, name: str, meta: dict, inputs: list) -> list:
    import tritonclient.grpc as grpcclient

    infer_inputs, outs = _kserve_request(grpcclient, meta, inputs, True)
    result = triton_grpc(server).infer(name, infer_inputs, outputs=outs, client_timeout=TIMEOUT)
    return _kserve_outputs(result, meta)


# ---------------------------------------------------------------- TF Serving gRPC


def tfs_predict_request(name: str, named_inputs: dict, version: int | None = None):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = "serving_default"
    if version is not None:
        req.model_spec.version.value = version
    for n, x in named_inputs.items():
        req.inputs[n].CopyFrom(tf.make_tensor_proto(x))
    return req


def tfs_grpc(server, name: str, meta: dict, inputs: list) -> list:
    """`tensorflow.serving.PredictionService/Predict` with `tf.make_tensor_proto` inputs."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    _check_arity(meta, inputs)
    req = tfs_predict_request(name, dict(zip(_names(meta, "inputs"), inputs)))
    with tfs_channel(server) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            req, timeout=TIMEOUT
        )
    got = []
    for n in _names(meta, "outputs"):
        if n not in reply.outputs:
            raise CaseError(f"no output '{n}' in the reply (has {sorted(reply.outputs)})")
        got.append(tf.make_ndarray(reply.outputs[n]))
    return got


# (case id suffix, call) per API; the case id is `<fixture>:serve-<suffix>`.
APIS = [
    ("tfs-rest-instances", tfs_rest_instances),
    ("tfs-rest-inputs", tfs_rest_inputs),
    ("kserve-http-binary", kserve_http(True)),
    ("kserve-http-json", kserve_http(False)),
    ("kserve-grpc", kserve_grpc),
    ("tfs-grpc", tfs_grpc),
]
