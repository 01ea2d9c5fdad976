"""The naive baseline of ``benchmarks/serving.py``: FastAPI, one Hugging Face forward per
request, no batching — the server most tutorials show. Same model, tokenization and request
format as streamtune's ``/v1/predict``.

Run: ``python -m benchmarks.naive_server MODEL_DIR PORT [--serial]``. By default the endpoint is
a plain ``def``, which FastAPI runs in its thread pool (concurrent forwards); ``--serial`` makes
it ``async def``, so forwards run one at a time on the event loop.
"""

from __future__ import annotations

import argparse

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class Instance(BaseModel):
    text: str
    context: str | None = None


class PredictRequest(BaseModel):
    instances: list[Instance]


def build(model_dir: str, max_length: int, serial: bool) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1).eval()
    app = FastAPI()

    @torch.inference_mode()
    def scores(body: PredictRequest) -> dict:
        inputs = tokenizer(
            [i.text for i in body.instances],
            [i.context or "" for i in body.instances],
            truncation="longest_first",
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        probabilities = torch.sigmoid(model(**inputs).logits.squeeze(-1)).tolist()
        return {"model_version": 0, "predictions": [{"score": p} for p in probabilities]}

    if serial:

        @app.post("/v1/predict")
        async def predict_serial(body: PredictRequest) -> dict:
            return scores(body)

    else:

        @app.post("/v1/predict")
        def predict(body: PredictRequest) -> dict:
            return scores(body)

    @app.get("/readyz")
    def readyz() -> dict:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("port", type=int)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--serial", action="store_true")
    args = parser.parse_args()
    app = build(args.model_dir, args.max_length, args.serial)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
