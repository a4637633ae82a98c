"""Requests `mdeploy serve` must refuse, through the real clients, and its TLS and bearer-token
auth. Every bad request must get its 4xx (REST) or gRPC code, and a good request through the same
API right after it must still be answered correctly. Case ids: `serve:bad-<class>:<api>`,
`serve:tfs-grpc-metadata`, `serve:tfs-grpc-status`, `serve:tls-<what>:<api>`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

import serve_clients as sc
from common import REL_TOL, Case, CaseError, compare_outputs_rel, error_line
from serve_server import Server

MODEL = "mlp"  # fixtures/onnx/mlp, served from its file
MAX_BODY_MB = 1
LOAD_TIMEOUT = 120.0
ALL_TOKEN, OTHER_TOKEN = "conformance-all", "conformance-other"


class Check:
    """The served model's fixture: its inputs, expected outputs and signature."""

    def __init__(self, server: Server, fixture: Path):
        self.server = server
        self.x = np.load(fixture / "input.npy")
        self.expected = [np.load(fixture / "expected.npy")]
        self.meta = sc.metadata(server, MODEL)
        self.input = self.meta["inputs"][0]["name"]

    def good(self, api: str) -> None:
        """A correct request through `api` is answered with the expected outputs."""
        call = dict(sc.APIS)[api]
        got = call(self.server, MODEL, self.meta, [self.x])
        _, rel, _ = compare_outputs_rel(got, self.expected)
        if rel > REL_TOL:
            raise CaseError(f"the good request after it: rel {rel:.2e} > {REL_TOL:g}")


def refused(call) -> str:
    """Runs a request that must fail; returns its HTTP status or gRPC code as text."""
    import grpc
    from tritonclient.utils import InferenceServerException

    try:
        call()
    except InferenceServerException as e:
        return str(e.status())
    except grpc.RpcError as e:
        return str(e.code())
    return "accepted"


def rest(check: Check, path: str, body, headers=None) -> str:
    status, reply = check.server.http("POST", path, body, headers)
    if status != 200 and not (isinstance(reply, dict) and "error" in reply):
        return f"{status} without an error object: {str(reply)[:100]}"
    return str(status)


def kserve_http(check: Check, x: np.ndarray, name=None, model=MODEL, version=""):
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    i = httpclient.InferInput(name or check.input, list(x.shape), np_to_triton_dtype(x.dtype))
    i.set_data_from_numpy(x, binary_data=True)
    return lambda: sc.triton_http(check.server).infer(model, [i], model_version=version)


def kserve_grpc(check: Check, x: np.ndarray, name=None, model=MODEL, version=""):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    i = grpcclient.InferInput(name or check.input, list(x.shape), np_to_triton_dtype(x.dtype))
    i.set_data_from_numpy(x)
    return lambda: sc.triton_grpc(check.server).infer(
        model, [i], model_version=version, client_timeout=sc.TIMEOUT
    )


def tfs_grpc(check: Check, x: np.ndarray, name=None, model=MODEL, version=None):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    def call():
        req = sc.tfs_predict_request(model, {name or check.input: x}, version)
        with sc.tfs_channel(check.server) as channel:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(req, timeout=60)

    return call


def bad_requests(check: Check) -> list[tuple[str, str, object, str]]:
    """(class, api, request, expected status) of every bad request."""
    x = check.x
    wide = np.concatenate([x, x[:, :1]], axis=1)  # one column too many
    as_int = x.astype(np.int32)
    path = f"/v1/models/{MODEL}:predict"
    big = np.zeros((1, (MAX_BODY_MB << 20) // 4 + 1024), dtype=np.float32)
    big_json = b'{"inputs": [' + b"0," * ((MAX_BODY_MB << 20) // 2) + b"0]}"
    invalid, missing, too_big = (
        "StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND", "StatusCode.RESOURCE_EXHAUSTED"
    )

    def tfs_rest(body, at=path):
        return lambda: rest(check, at, body)

    def clients(cls, grpc_code, **kw):
        """The same bad request through tritonclient.http, tritonclient.grpc and TF Serving's
        gRPC stubs (`version` as each takes it)."""
        version = kw.pop("version", None)
        v = {} if version is None else {"version": str(version)}
        return [
            (cls, "kserve-http-binary", kserve_http(check, **kw, **v), grpc_code[1]),
            (cls, "kserve-grpc", kserve_grpc(check, **kw, **v), grpc_code[0]),
            (cls, "tfs-grpc", tfs_grpc(check, **kw, version=version), grpc_code[0]),
        ]

    rows_bad = {"instances": [[1.0, 2.0], [3.0]]}
    return [
        ("wrong-dtype", "tfs-rest-inputs", tfs_rest({"inputs": [["a"] * x.shape[1]]}), "400"),
        *clients("wrong-dtype", (invalid, "400"), x=as_int),
        ("wrong-shape", "tfs-rest-inputs", tfs_rest({"inputs": wide.tolist()}), "400"),
        ("wrong-shape", "tfs-rest-instances", tfs_rest(rows_bad), "400"),
        *clients("wrong-shape", (invalid, "400"), x=wide),
        ("missing-input", "tfs-rest-inputs", tfs_rest({"inputs": {"nope": x.tolist()}}), "400"),
        *clients("missing-input", (invalid, "400"), x=x, name="nope"),
        (
            "unknown-model", "tfs-rest-inputs",
            tfs_rest({"inputs": x.tolist()}, "/v1/models/nope:predict"), "404",
        ),
        *clients("unknown-model", (missing, "404"), x=x, model="nope"),
        (
            "unknown-version", "tfs-rest-inputs",
            tfs_rest({"inputs": x.tolist()}, f"/v1/models/{MODEL}/versions/7:predict"), "404",
        ),
        *clients("unknown-version", (missing, "404"), x=x, version=7),
        ("malformed-json", "tfs-rest-inputs", tfs_rest(b'{"inputs": [[1.0, 2.0'), "400"),
        (
            "malformed-json", "kserve-http-json",
            tfs_rest(b'{"inputs": [{"name": ', f"/v2/models/{MODEL}/infer"), "400",
        ),
        ("body-too-large", "tfs-rest-inputs", tfs_rest(big_json), "413"),
        *clients("body-too-large", (too_big, "413"), x=big),
    ]


def run_bad(check: Check, known, only) -> list[Case]:
    cases = []
    for cls, api, request, want in bad_requests(check):
        case = Case(f"serve:bad-{cls}:{api}", extra={"api": api})
        if only is not None and only not in case.id:
            continue
        try:
            plain = api.startswith("tfs-rest") or cls == "malformed-json"  # urllib: a status
            got = request() if plain else refused(request)
            if got != want:
                raise CaseError(f"got {got}, expected {want}")
            check.good(api)
        except CaseError as err:
            cases.append(known.settle(case, False, str(err)))
            continue
        except Exception as err:
            cases.append(known.settle(case, False, error_line(err)[:300]))
            continue
        cases.append(known.settle(case, True))
    return cases


def run_tfs_metadata(check: Check, known, only) -> list[Case]:
    """TF Serving's GetModelMetadata (signature_def) and GetModelStatus through its gRPC stubs."""
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    def metadata():
        req = get_model_metadata_pb2.GetModelMetadataRequest()
        req.model_spec.name = MODEL
        req.metadata_field.append("signature_def")
        with sc.tfs_channel(check.server) as channel:
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
                req, timeout=60
            )
        sigs = get_model_metadata_pb2.SignatureDefMap()
        reply.metadata["signature_def"].Unpack(sigs)
        sig = sigs.signature_def["serving_default"]
        got = sorted(sig.inputs), sorted(sig.outputs)
        want = sorted(sc._names(check.meta, "inputs")), sorted(sc._names(check.meta, "outputs"))
        if got != want:
            raise CaseError(f"signature {got}, expected {want}")
        dims = [d.size for d in sig.inputs[check.input].tensor_shape.dim]
        if dims != list(check.meta["inputs"][0]["shape"]):
            want_dims = check.meta["inputs"][0]["shape"]
            raise CaseError(f"input dims {dims}, KServe metadata says {want_dims}")

    def status():
        req = get_model_status_pb2.GetModelStatusRequest()
        req.model_spec.name = MODEL
        with sc.tfs_channel(check.server) as channel:
            reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(req, timeout=60)
        states = [(v.version, v.state) for v in reply.model_version_status]
        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        if states != [(1, available)]:
            raise CaseError(f"versions {states}, expected [(1, AVAILABLE)]")

    cases = []
    for case_id, fn in (("serve:tfs-grpc-metadata", metadata), ("serve:tfs-grpc-status", status)):
        if only is not None and only not in case_id:
            continue
        try:
            fn()
            cases.append(known.settle(Case(case_id), True))
        except Exception as err:
            problem = str(err) if isinstance(err, CaseError) else error_line(err)
            cases.append(known.settle(Case(case_id), False, problem[:300]))
    return cases


def self_signed(work: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, with its key: the openssl CLI, else the
    `cryptography` package."""
    cert, key = work / "cert.pem", work / "key.pem"
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
        return cert, key
    return _self_signed_cryptography(cert, key)


def _self_signed_cryptography(cert: Path, key: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    c = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=2)).add_extension(san, critical=False)
        .sign(k, hashes.SHA256())
    )
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def tls_requests(check: Check, ca: Path) -> list[tuple[str, str, object, str]]:
    """(what, api, request, expected) through TLS with the CA, with and without tokens."""
    import grpc
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server, x = check.server, check.x
    path = f"/v1/models/{MODEL}:predict"
    bearer = lambda t: {"authorization": f"Bearer {t}"}  # noqa: E731

    def rest_call(headers):
        status, reply = server.http("POST", path, {"inputs": x.tolist()}, headers)
        if status == 200:
            _, rel, _ = compare_outputs_rel([np.asarray(reply["outputs"])], check.expected)
            return "200" if rel <= REL_TOL else f"200 with rel {rel:.2e}"
        return str(status)

    def triton_http_call(headers):
        client = httpclient.InferenceServerClient(
            f"127.0.0.1:{server.rest_port}", ssl=True, ssl_options={"ca_certs": str(ca)},
            connection_timeout=60, network_timeout=60,
        )
        return _triton_call(client, lambda i: httpclient.InferInput(*i), headers, {})

    def triton_grpc_call(headers):
        client = grpcclient.InferenceServerClient(
            server.grpc_target(), ssl=True, root_certificates=str(ca)
        )
        timeout = {"client_timeout": sc.TIMEOUT}
        return _triton_call(client, lambda i: grpcclient.InferInput(*i), headers, timeout)

    def _triton_call(client, make, headers, timeout):
        try:
            i = make((check.input, list(x.shape), "FP32"))
            i.set_data_from_numpy(x)
            # a copy: tritonclient.http adds its own headers to the dict it is given
            result = client.infer(MODEL, [i], headers=dict(headers or {}), **timeout)
            got = result.as_numpy(check.meta["outputs"][0]["name"])
            _, rel, _ = compare_outputs_rel([got], check.expected)
            return "OK" if rel <= REL_TOL else f"OK with rel {rel:.2e}"
        finally:
            client.close()

    def tfs_call(token):
        req = sc.tfs_predict_request(MODEL, {check.input: x})
        creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        with sc.tfs_channel(server, creds) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            md = [("authorization", f"Bearer {token}")] if token else None
            reply = stub.Predict(req, timeout=60, metadata=md)
        import tensorflow as tf

        got = tf.make_ndarray(reply.outputs[check.meta["outputs"][0]["name"]])
        _, rel, _ = compare_outputs_rel([got], check.expected)
        return "OK" if rel <= REL_TOL else f"OK with rel {rel:.2e}"

    out = []
    for what, token, rest_want, grpc_want in (
        ("no-token", None, "401", "StatusCode.UNAUTHENTICATED"),
        ("token-for-another-model", OTHER_TOKEN, "403", "StatusCode.PERMISSION_DENIED"),
        ("token", ALL_TOKEN, "200", "OK"),
    ):
        h = bearer(token) if token else None
        out += [
            (what, "tfs-rest-inputs", lambda h=h: rest_call(h), rest_want),
            (
                what, "kserve-http-binary",
                lambda h=h: _or_status(lambda: triton_http_call(h), "OK"),
                "OK" if grpc_want == "OK" else rest_want,
            ),
            (
                what, "kserve-grpc",
                lambda h=h: _or_status(lambda: triton_grpc_call(h), "OK"), grpc_want,
            ),
            (what, "tfs-grpc", lambda t=token: _or_status(lambda: tfs_call(t), "OK"), grpc_want),
        ]
    return out


def _or_status(call, ok: str) -> str:
    got = refused(call)
    return ok if got == "accepted" else got


def run_tls(mdeploy: Path, fixture: Path, work: Path, known, only) -> list[Case]:
    ids = [f"serve:tls-{w}:{a}" for w in ("no-token", "token-for-another-model", "token")
           for a in ("tfs-rest-inputs", "kserve-http-binary", "kserve-grpc", "tfs-grpc")]
    if only is not None and not any(only in i for i in ids):
        return []
    try:
        cert, key = self_signed(work)
    except Exception as err:
        return [known.settle(Case(i), False, f"no certificate: {error_line(err)}") for i in ids]
    tokens = work / "tokens.txt"
    tokens.write_text(f"{ALL_TOKEN} *\n{OTHER_TOKEN} some_other_model\n")
    args = ["--name", MODEL, "--tls-cert", str(cert), "--tls-key", str(key)]
    args += ["--auth-tokens", str(tokens)]
    with Server(mdeploy, fixture / "model.onnx", args, tls_ca=cert) as server:
        server.start()
        server.wait_models([MODEL], LOAD_TIMEOUT)
        check = Check.__new__(Check)
        check.server = server
        check.x = np.load(fixture / "input.npy")
        check.expected = [np.load(fixture / "expected.npy")]
        # The plain server's metadata is not reachable here without a token: ask with one.
        auth = {"authorization": f"Bearer {ALL_TOKEN}"}
        status, meta = server.http("GET", f"/v2/models/{MODEL}", headers=auth)
        if status != 200:
            return [known.settle(Case(i), False, f"metadata over TLS: HTTP {status}") for i in ids]
        check.meta, check.input = meta, meta["inputs"][0]["name"]
        cases = []
        for what, api, request, want in tls_requests(check, cert):
            case = Case(f"serve:tls-{what}:{api}", extra={"api": api})
            if only is not None and only not in case.id:
                continue
            try:
                got = request()
                ok = got == want
                cases.append(known.settle(case, ok, "" if ok else f"got {got}, expected {want}"))
            except Exception as err:
                cases.append(known.settle(case, False, error_line(err)[:300]))
        return cases


def run(mdeploy: Path, repo: Path, known, only, work: Path) -> list[Case]:
    fixture = repo / "fixtures" / "onnx" / "mlp"
    cases = []
    ids = ["serve:bad-", "serve:tfs-grpc-"]
    if only is None or any(only in i or i in only for i in ids):
        args = ["--name", MODEL, "--max-body-mb", str(MAX_BODY_MB)]
        with Server(mdeploy, fixture / "model.onnx", args) as server:
            server.start()
            state = server.wait_models([MODEL], LOAD_TIMEOUT)[MODEL]
            if state is not None:
                return [known.settle(Case("serve:bad-requests"), False, f"not served: {state}")]
            check = Check(server, fixture)
            cases += run_bad(check, known, only)
            cases += run_tfs_metadata(check, known, only)
            if not server.alive():
                cases.append(known.settle(Case("serve:bad-requests"), False, "the server exited"))
            sc.close_clients()
    cases += run_tls(mdeploy, fixture, work, known, only)
    sc.close_clients()
    return cases
