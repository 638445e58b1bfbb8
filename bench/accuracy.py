"""How close each counter comes to a count worked out by hand, per model.

    python bench/accuracy.py                              # print the table
    python bench/accuracy.py --markdown docs/accuracy.md  # also write it into the doc

Every model is built from its config class with random weights (nothing is downloaded) and
run for real on the CPU. Per model the table gives the analytic count (a formula of the
config, written out below) and what four counters make of the model:

* fvcore alone: ``FlopCountAnalysis(model, args).total()``, as fvcore documents it. Keyword
  inputs go through the one-line positional wrapper every fvcore user writes (fvcore takes a
  tuple of positional tensors only); a model it cannot trace shows ``fails: <reason>``.
* FlopCounterMode alone: ``torch.utils.flop_counter.FlopCounterMode`` total / 2 (it counts
  2 FLOPs per multiply-add), on CPU tensors.
* this plugin with either backend: ``count_model(model, inputs, backend=...)``.

All four run under ``torch.no_grad()`` on a model in eval mode, as inference is counted (and
as the plugin counts by default). Everything is in MACs.

Conventions of the analytic counts (those of ``pytest_flopbudget.counting.formulas``):

* a matrix product (N, K) x (K, M) is N*K*M MACs; a convolution is out_numel * Cin/groups *
  kernel MACs, a transposed one in_numel * Cout/groups * kernel;
* attention is Q K^T plus attn V, B*H*L*S*(E + Ev); a causal mask counts the full product;
  grouped-query attention counts every query head;
* LayerNorm is 5 MACs per element (fvcore's rule, affine), BatchNorm in eval 2 per element
  (affine), adaptive average pooling 1 per input element; a hand-written RMS norm (pow, mean,
  rsqrt, mul, as in transformers' LlamaRMSNorm) is elementwise work: 0;
* elementwise ops (add, activations, softmax, dropout, scaling), embeddings (lookups) and
  max pooling are 0.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

START = "<!-- accuracy-table:start -->"
END = "<!-- accuracy-table:end -->"
COMMAND = "python bench/accuracy.py --markdown docs/accuracy.md"


# --------------------------------------------------------------------------------------------
# analytic counts, as functions of the config


def encoder_layer_macs(tokens: int, d: int, ff: int) -> int:
    """One post- or pre-norm transformer encoder layer over ``tokens`` tokens of width d."""
    qkv = 3 * tokens * d * d
    attention = 2 * tokens * tokens * d  # Q K^T and attn V, summed over the heads (H * d/H = d)
    out = tokens * d * d
    ffn = 2 * tokens * d * ff
    norms = 2 * 5 * tokens * d  # two LayerNorms, 5 MACs per element
    return qkv + attention + out + ffn + norms


def bert_macs(config: Any, seq: int) -> int:
    """BertModel: embeddings (lookups) + their LayerNorm, the layers, the pooler on [CLS]."""
    d = config.hidden_size
    layers = config.num_hidden_layers * encoder_layer_macs(seq, d, config.intermediate_size)
    embedding_norm = 5 * seq * d
    pooler = d * d
    return embedding_norm + layers + pooler


def vit_macs(config: Any) -> int:
    """ViTModel: patch embedding (a strided conv), the layers over patches + [CLS], the final
    LayerNorm, the pooler on [CLS]."""
    d, patch = config.hidden_size, config.patch_size
    patches = (config.image_size // patch) ** 2
    tokens = patches + 1
    embedding = patches * d * config.num_channels * patch * patch
    layers = config.num_hidden_layers * encoder_layer_macs(tokens, d, config.intermediate_size)
    final_norm = 5 * tokens * d
    pooler = d * d
    return embedding + layers + final_norm + pooler


def torchvision_vit_macs(image: int, patch: int, d: int, layers: int, ff: int, classes: int) -> int:
    """torchvision's ViT layout: patch conv, pre-norm layers, final LayerNorm, head on [CLS]."""
    patches = (image // patch) ** 2
    tokens = patches + 1
    embedding = patches * d * 3 * patch * patch
    return (
        embedding
        + layers * encoder_layer_macs(tokens, d, ff)
        + 5 * tokens * d  # final LayerNorm
        + d * classes  # classification head on the class token
    )


def gpt2_macs(config: Any, new: int, past: int = 0) -> int:
    """GPT2LMHeadModel on ``new`` tokens with ``past`` cached ones: attention over past + new."""
    d = config.n_embd
    ff = config.n_inner if config.n_inner is not None else 4 * d
    keys = past + new
    per_layer = (
        2 * 5 * new * d  # ln_1, ln_2
        + 3 * new * d * d  # c_attn (Conv1D = addmm)
        + 2 * new * keys * d  # Q K^T and attn V over the cached and new keys
        + new * d * d  # c_proj
        + 2 * new * d * ff  # mlp c_fc, c_proj
    )
    return config.n_layer * per_layer + 5 * new * d + new * d * config.vocab_size  # ln_f, lm_head


def llama_macs(config: Any, seq: int) -> int:
    """LlamaForCausalLM: RMS norms are written out by hand (0); grouped-query attention counts
    every query head; the rotary frequencies are one (hd/2, 1) x (1, seq) matmul."""
    d, ff, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    head_dim = d // heads
    kv = config.num_key_value_heads * head_dim
    per_layer = (
        seq * d * d  # q_proj
        + 2 * seq * d * kv  # k_proj, v_proj
        + 2 * heads * seq * seq * head_dim  # Q K^T and attn V per query head
        + seq * d * d  # o_proj
        + 3 * seq * d * ff  # gate, up, down
    )
    rotary = (head_dim // 2) * seq
    return config.num_hidden_layers * per_layer + rotary + seq * d * config.vocab_size


def resnet_macs(config: Any, image: int, classes: int) -> int:
    """ResNetForImageClassification (bottleneck layers): every conv with its eval BatchNorm
    (2 MACs per element), the 7x7 stem, the 1x1 shortcuts, average pooling, the classifier."""

    def conv_bn(c_in: int, c_out: int, kernel: int, size_out: int) -> int:
        out = c_out * size_out * size_out
        return out * c_in * kernel * kernel + 2 * out

    size = image // 2  # stem: 7x7 stride 2
    total = conv_bn(config.num_channels, config.embedding_size, 7, size)
    size //= 2  # max pool 3x3 stride 2: 0
    c_in = config.embedding_size
    for stage, (c_out, depth) in enumerate(zip(config.hidden_sizes, config.depths, strict=True)):
        stride = 2 if stage > 0 or config.downsample_in_first_stage else 1
        mid = c_out // 4  # reduction
        for layer in range(depth):
            s = stride if layer == 0 else 1
            size_out = size // s
            if layer == 0 and (c_in != c_out or s != 1):
                total += conv_bn(c_in, c_out, 1, size_out)  # shortcut
            total += conv_bn(c_in, mid, 1, size)  # 1x1 reduce (stride on the 3x3)
            total += conv_bn(mid, mid, 3, size_out)
            total += conv_bn(mid, c_out, 1, size_out)
            c_in, size = c_out, size_out
    pooling = c_in * size * size
    return total + pooling + c_in * classes


def mha_macs(batch: int, seq: int, d: int) -> int:
    """nn.MultiheadAttention self-attention: in-projection, attention, out-projection."""
    return 3 * batch * seq * d * d + 2 * batch * seq * seq * d + batch * seq * d * d


def cnn_macs(batch: int) -> int:
    """SmallCNN below on 3x32x32."""
    return batch * (
        16 * 32 * 32 * 3 * 9  # stem 3x3, 3 -> 16
        + 2 * 16 * 32 * 32  # BatchNorm (eval, affine)
        + 32 * 16 * 16 * (16 // 4) * 9  # grouped 3x3 stride 2, 16 -> 32, 4 groups
        + 32 * 16 * 16 * 1 * 9  # depthwise 3x3
        + 64 * 16 * 16 * 32  # pointwise 1x1, 32 -> 64
        + 64 * 16 * 16 * 16 * 2 * 2  # ConvTranspose2d 2x2 stride 2, 64 -> 16 (per input element)
        + 16 * 32 * 32 * (8 // 2) * 4 * 4  # grouped ConvTranspose2d 4x4 stride 2, 16 -> 8
        + 8 * 64 * 64  # adaptive average pooling, 1 per input element
        + 8 * 10  # classifier
    )


# --------------------------------------------------------------------------------------------
# models


class SmallCNN(nn.Module):
    """Grouped, depthwise and transposed (plain and grouped) convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.grouped = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4)
        self.depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.pointwise = nn.Conv2d(32, 64, 1)
        self.up = nn.ConvTranspose2d(64, 16, 2, stride=2)
        self.up_grouped = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, groups=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(self.pointwise(self.depthwise(self.grouped(x))))
        x = self.up_grouped(torch.relu(self.up(x)))
        return self.fc(self.pool(x).flatten(1))


class SelfAttention(nn.Module):
    """nn.MultiheadAttention called the way torchvision's ViT calls it (fast-path eligible)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


class SDPA(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


class TorchvisionStyleViT(nn.Module):
    """torchvision's vit_b_16 layout (torchvision is not a dependency): pre-norm blocks of
    nn.MultiheadAttention and an MLP, which take the fused fast path in eval under no_grad."""

    class Block(nn.Module):
        def __init__(self, d: int, heads: int, ff: int) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(d, eps=1e-6)
            self.self_attention = nn.MultiheadAttention(d, heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(d, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.ln_1(x)
            y, _ = self.self_attention(y, y, y, need_weights=False)
            x = x + y
            return x + self.mlp(self.ln_2(x))

    def __init__(self, image: int, patch: int, d: int, layers: int, heads: int, ff: int) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, d, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embedding = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, d))
        self.layers = nn.Sequential(*(self.Block(d, heads, ff) for _ in range(layers)))
        self.ln = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.ln(self.layers(x + self.pos_embedding))
        return self.head(x[:, 0])


@dataclass(frozen=True)
class Case:
    name: str
    model: nn.Module
    inputs: object
    analytic: int

    def fresh_inputs(self) -> object:
        """The inputs, with every non-tensor keyword value (a KV cache) copied: a decoding
        step appends to the cache it is given, so each counter must get the original."""
        if isinstance(self.inputs, dict):
            return {
                key: value if isinstance(value, torch.Tensor) else copy.deepcopy(value)
                for key, value in self.inputs.items()
            }
        return self.inputs


def _ids(vocab: int, seq: int) -> torch.Tensor:
    return torch.randint(0, vocab, (1, seq))


def cases() -> list[Case]:
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTModel,
    )

    torch.manual_seed(0)
    found: list[Case] = []

    def add(
        name: str, model: nn.Module, inputs: object, analytic: int, train: bool = False
    ) -> None:
        found.append(Case(name, model.train(train), inputs, analytic))

    # the models of tests/test_real_models.py
    for impl in ("sdpa", "eager"):
        config = BertConfig(
            vocab_size=100,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=256,
            max_position_embeddings=64,
            attn_implementation=impl,
        )
        ids = _ids(100, 16)
        add(f"BERT tiny ({impl})", BertModel(config), {"input_ids": ids}, bert_macs(config, 16))
    vit = ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        image_size=32,
        patch_size=8,
        attn_implementation="sdpa",
    )
    pixels = torch.randn(1, 3, 32, 32)
    add("ViT tiny", ViTModel(vit), {"pixel_values": pixels}, vit_macs(vit))
    gpt2 = GPT2Config(
        vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64, attn_implementation="sdpa"
    )
    gpt2_model = GPT2LMHeadModel(gpt2).eval()
    ids = _ids(100, 16)
    add("GPT-2 tiny, prompt of 16", gpt2_model, {"input_ids": ids}, gpt2_macs(gpt2, 16))
    with torch.no_grad():
        cache = gpt2_model(input_ids=ids, use_cache=True).past_key_values
    add(
        "GPT-2 tiny, 1 token after 16 cached",
        gpt2_model,
        {"input_ids": _ids(100, 1), "past_key_values": cache},
        gpt2_macs(gpt2, 1, past=16),
    )
    llama = LlamaConfig(
        vocab_size=100,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    ids = _ids(100, 16)
    add("Llama tiny (GQA 4/2)", LlamaForCausalLM(llama), {"input_ids": ids}, llama_macs(llama, 16))
    images = torch.randn(2, 3, 32, 32)
    add("CNN: grouped, depthwise, transposed", SmallCNN(), images, cnn_macs(2))
    x = torch.randn(2, 16, 64)
    add("nn.MultiheadAttention, fast path", SelfAttention(64, 4), x, mha_macs(2, 16, 64))
    add(
        "nn.MultiheadAttention, training path",
        SelfAttention(64, 4).train(),
        x,
        mha_macs(2, 16, 64),
        train=True,  # a module in training mode never takes the fast path
    )
    add(
        "nn.TransformerEncoderLayer, fast path",
        nn.TransformerEncoderLayer(64, 4, dim_feedforward=256, dropout=0.0, batch_first=True),
        x,
        mha_macs(2, 16, 64) + 2 * 2 * 16 * 64 * 256 + 2 * 5 * 2 * 16 * 64,
    )
    q, k, v = torch.randn(2, 4, 16, 32), torch.randn(2, 4, 24, 32), torch.randn(2, 4, 24, 16)
    add("SDPA", SDPA(causal=False), (q, k, v), 2 * 4 * 16 * 24 * (32 + 16))
    add("SDPA, causal", SDPA(causal=True), (q, q, q), 2 * 4 * 16 * 16 * (32 + 32))

    # published shapes
    bert = BertConfig(attn_implementation="sdpa")
    ids = _ids(bert.vocab_size, 128)
    add("BERT-base, seq 128", BertModel(bert), {"input_ids": ids}, bert_macs(bert, 128))
    vit = ViTConfig(attn_implementation="sdpa")
    pixels224 = torch.randn(1, 3, 224, 224)
    add("ViT-B/16 (transformers), 224", ViTModel(vit), {"pixel_values": pixels224}, vit_macs(vit))
    add(
        "ViT-B/16 (nn.MultiheadAttention, torchvision layout), 224",
        TorchvisionStyleViT(224, 16, 768, 12, 12, 3072),
        pixels224,
        torchvision_vit_macs(224, 16, 768, 12, 3072, 1000),
    )
    resnet = ResNetConfig(num_labels=1000)
    add(
        "ResNet-50 (transformers), 224",
        ResNetForImageClassification(resnet),
        {"pixel_values": pixels224},
        resnet_macs(resnet, 224, 1000),
    )
    gpt2 = GPT2Config(attn_implementation="sdpa")
    ids = _ids(gpt2.vocab_size, 128)
    add(
        "GPT-2 small, prompt of 128",
        GPT2LMHeadModel(gpt2),
        {"input_ids": ids},
        gpt2_macs(gpt2, 128),
    )
    return found


# --------------------------------------------------------------------------------------------
# counters


class _Positional(nn.Module):
    """What an fvcore user writes for keyword inputs: tensors positional, the rest fixed."""

    def __init__(self, model: nn.Module, kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.names = [key for key, value in kwargs.items() if isinstance(value, torch.Tensor)]
        self.fixed = {key: value for key, value in kwargs.items() if key not in self.names}

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.model(**dict(zip(self.names, tensors, strict=True)), **self.fixed)


def fvcore_alone(model: nn.Module, inputs: object) -> int:
    from fvcore.nn import FlopCountAnalysis

    if isinstance(inputs, dict):
        wrapper = _Positional(model, inputs)
        args = tuple(inputs[name] for name in wrapper.names)
        analysis = FlopCountAnalysis(wrapper, args)
    else:
        analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return int(analysis.total())


def flop_counter_mode_alone(model: nn.Module, inputs: object) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    args, kwargs = _call(inputs)
    with FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops() // 2


def plugin(backend: str) -> Callable[[nn.Module, object], int]:
    def count(model: nn.Module, inputs: object) -> int:
        from pytest_flopbudget import count_model

        result = count_model(model, inputs, backend=backend)
        if result.unknown_ops:
            print(f"  unknown ops ({backend}): {result.unknown_ops}", file=sys.stderr)
        return result.macs

    return count


def _call(inputs: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(inputs, dict):
        return (), dict(inputs)
    if isinstance(inputs, tuple):
        return inputs, {}
    return (inputs,), {}


COUNTERS: dict[str, Callable[[nn.Module, object], int]] = {
    "fvcore alone": fvcore_alone,
    "FlopCounterMode alone": flop_counter_mode_alone,
    "plugin, fvcore": plugin("fvcore"),
    "plugin, torch": plugin("torch"),
}


def _measure(counter: Callable[[nn.Module, object], int], case: Case) -> int | str:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return counter(case.model, case.fresh_inputs())
    except Exception as error:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        reason = lines[0].split(". ")[0]  # the first sentence
        return f"fails: {type(error).__name__}: {reason[:100]}"


# --------------------------------------------------------------------------------------------
# the table


def _macs(value: int) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:.4g} {prefix}"
    return f"{value}"


def _cell(value: int | str, analytic: int) -> str:
    if isinstance(value, str):
        return value.replace("|", "\\|")
    if value == analytic:
        return f"{_macs(value)} (exact)"
    error = (value - analytic) / analytic * 100
    mark = "" if abs(error) <= 0.5 else " **"
    return f"{_macs(value)} ({error:+.2f}%){mark}"


def table(rows: list[tuple[Case, dict[str, int | str]]]) -> str:
    header = ["model", "analytic MACs", *COUNTERS]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    for case, results in rows:
        cells = [case.name, f"{case.analytic:,}"]
        cells += [_cell(results[name], case.analytic) for name in COUNTERS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def attention_on_meta() -> str:
    """FlopCounterMode on the same SDPA call with CPU and with meta tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    lines = [
        "| SDPA call | analytic MACs | FlopCounterMode, CPU | FlopCounterMode, meta |",
        "| --- | ---: | ---: | ---: |",
    ]
    for causal in (False, True):
        q = torch.randn(2, 4, 16, 32)
        analytic = 2 * 4 * 16 * 16 * (32 + 32)
        cells = []
        for device in ("cpu", "meta"):
            t = q.to(device)
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                F.scaled_dot_product_attention(t, t, t, is_causal=causal)
            cells.append(f"{counter.get_total_flops() // 2:,}")
        name = "is_causal=True" if causal else "no mask"
        lines.append(f"| (2, 4, 16, 32), {name} | {analytic:,} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def generated(rows: list[tuple[Case, dict[str, int | str]]], seconds: float) -> str:
    import fvcore
    import transformers

    fvcore_version = getattr(fvcore, "__version__", "0.1.5")
    return "\n".join(
        [
            START,
            f"Generated by `{COMMAND}` in {seconds:.0f} s (torch {torch.__version__}, "
            f"transformers {transformers.__version__}, fvcore {fvcore_version}, CPU). "
            "MACs; in brackets the error against the analytic count, ** where it exceeds 0.5%.",
            "",
            table(rows),
            "",
            "FlopCounterMode and attention, the same call on two devices:",
            "",
            attention_on_meta(),
            END,
        ]
    )


def write_markdown(path: Path, block: str) -> None:
    """Replace the generated block between the markers, or write a file holding only it."""
    if path.exists():
        text = path.read_text()
        start, end = text.find(START), text.find(END)
        if start != -1 and end != -1:
            path.write_text(text[:start] + block + text[end + len(END) :])
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="write the table into this Markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    rows: list[tuple[Case, dict[str, int | str]]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        all_cases = cases()
    for case in all_cases:
        results = {name: _measure(counter, case) for name, counter in COUNTERS.items()}
        rows.append((case, results))
        print(f"{case.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    block = generated(rows, time.perf_counter() - started)
    print(block)
    if args.markdown is not None:
        write_markdown(args.markdown, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
