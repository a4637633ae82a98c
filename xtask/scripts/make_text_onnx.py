"""Builds the serving benchmark's text model with PyTorch: token ids (int64, [batch, 64]) ->
Embedding(8000, 128) -> 2-layer GRU(256, batch_first) -> last step -> Linear(256, 4) logits.
A sentiment-classifier shape, untrained (seed 0), exported with the TorchScript exporter and a
run-time batch dimension. Also writes OUT_DIR/text_input.npy (one row of ids).

usage: python make_text_onnx.py OUT.onnx
"""
import os
import sys

import numpy as np
import torch

VOCAB, EMBED, HIDDEN, CLASSES, SEQ = 8000, 128, 256, 4, 64


class TextGru(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED)
        self.gru = torch.nn.GRU(EMBED, HIDDEN, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, ids):
        h, _ = self.gru(self.embed(ids))
        return self.head(h[:, -1, :])


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    model = TextGru().eval()
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, VOCAB, (1, SEQ), dtype=np.int64))
    torch.onnx.export(
        model,
        (ids,),
        out,
        input_names=["input_ids"],
        output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    np.save(os.path.join(os.path.dirname(out), "text_input.npy"), ids.numpy())
    params = sum(p.numel() for p in model.parameters())
    print(f"{out}: {params * 4 / 1e6:.1f} MB of weights")


if __name__ == "__main__":
    main()
