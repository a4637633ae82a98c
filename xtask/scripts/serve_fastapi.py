"""What a user writes instead of `mdeploy serve`: FastAPI + onnxruntime behind uvicorn, with TF
Serving's REST contract (`POST /v1/models/NAME:predict`, `{"instances": [...]}` in,
`{"predictions": [...]}` out) for a one-input, one-output ONNX model. The serving benchmark
(`cargo xtask bench serve`) runs it as

    MODEL_PATH=m.onnx MODEL_NAME=m uvicorn serve_fastapi:app --app-dir xtask/scripts \
        --workers CORES --no-access-log

i.e. the usual setup: one worker process per core, each with its own session (default session
options), a sync endpoint (FastAPI runs it on its thread pool; onnxruntime releases the GIL).
"""
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

MODEL_NAME = os.environ["MODEL_NAME"]
session = ort.InferenceSession(os.environ["MODEL_PATH"], providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0]
DTYPE = np.int64 if INPUT.type == "tensor(int64)" else np.float32

app = FastAPI()


class PredictRequest(BaseModel):
    instances: list


@app.get("/v1/models/{name}")
def status(name: str):
    if name != MODEL_NAME:
        raise HTTPException(404, f"Servable not found for request: Latest({name})")
    return {"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}


@app.post("/v1/models/{name}:predict")
def predict(name: str, req: PredictRequest):
    if name != MODEL_NAME:
        raise HTTPException(404, f"Servable not found for request: Latest({name})")
    try:
        x = np.asarray(req.instances, dtype=DTYPE)
        (y,) = session.run(None, {INPUT.name: x})
    except Exception as e:  # bad shapes or dtypes: TF Serving answers 400
        raise HTTPException(400, str(e))
    return {"predictions": y.tolist()}
