"""The benchmarked models, built real (random weights), fake (``flops.abstract()``) or on meta.

Nothing is downloaded: the transformers models are built from config classes. ResNet-50 is
transformers' ``ResNetForImageClassification(ResNetConfig(num_labels=1000))`` (the default
config is ResNet-50's layout: bottleneck blocks, depths 3-4-6-3; torchvision is not needed).
The FFN and the small CNN are the examples' own (``examples/models.py``).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from _common import REPO_DIR

MODELS = ("ffn", "small_cnn", "resnet50", "bert_base", "llama7b", "llama70b")
KINDS = ("real", "fake", "meta")

LLAMA_7B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
}
LLAMA_SEQUENCE = 2048
LLAMA_70B = {
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "intermediate_size": 28672,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
}
LLAMA_70B_SEQUENCE = 4096
BERT_SEQUENCE = 128

LABELS = {
    "ffn": "FFN (seed article), 1x4",
    "small_cnn": "SmallCNN, 1x3x64x64",
    "resnet50": "ResNet-50, {batch}x3x224x224",
    "bert_base": f"BERT-base, 1x{BERT_SEQUENCE} tokens",
    "llama7b": f"Llama-2-7B shape, 1x{LLAMA_SEQUENCE} tokens",
    "llama70b": f"Llama-2-70B shape, 1x{LLAMA_70B_SEQUENCE} tokens",
}


@dataclass
class Built:
    """A model, its positional inputs, and the fake scope they were made in (or None)."""

    model: Any
    args: tuple[Any, ...]
    scope: Any = None


def label(name: str, batch: int = 1) -> str:
    return LABELS[name].format(batch=batch)


def _example_models() -> ModuleType:
    path = REPO_DIR / "examples" / "models.py"
    spec = importlib.util.spec_from_file_location("flopbudget_example_models", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def preload(name: str) -> None:
    """Import what building ``name`` needs, so that build times leave out import times."""
    import torch  # noqa: F401

    if name in ("resnet50", "bert_base", "llama7b", "llama70b"):
        import transformers

        classes = {
            "resnet50": "ResNetForImageClassification",
            "bert_base": "BertModel",
            "llama7b": "LlamaForCausalLM",
            "llama70b": "LlamaForCausalLM",
        }
        getattr(transformers, classes[name])  # transformers imports model modules lazily
    else:
        _example_models()


def _factory(name: str, batch: int) -> Callable[[], tuple[Any, tuple[Any, ...]]]:
    """A function that builds (model, args) in whatever mode or device is current."""
    import torch

    def ffn() -> tuple[Any, tuple[Any, ...]]:
        return _example_models().FFN().eval(), (torch.randn(batch, 4),)

    def small_cnn() -> tuple[Any, tuple[Any, ...]]:
        return _example_models().SmallCNN().eval(), (torch.randn(batch, 3, 64, 64),)

    def resnet50() -> tuple[Any, tuple[Any, ...]]:
        from transformers import ResNetConfig, ResNetForImageClassification

        model = ResNetForImageClassification(ResNetConfig(num_labels=1000)).eval()
        return model, (torch.randn(batch, 3, 224, 224),)

    def bert_base() -> tuple[Any, tuple[Any, ...]]:
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig()).eval()
        return model, (torch.randint(0, 30522, (batch, BERT_SEQUENCE)),)

    def llama7b() -> tuple[Any, tuple[Any, ...]]:
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**LLAMA_7B)).eval()
        return model, (torch.randint(0, LLAMA_7B["vocab_size"], (batch, LLAMA_SEQUENCE)),)

    def llama70b() -> tuple[Any, tuple[Any, ...]]:
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**LLAMA_70B)).eval()
        return model, (torch.zeros(batch, LLAMA_70B_SEQUENCE, dtype=torch.long),)

    factories = {
        "ffn": ffn,
        "small_cnn": small_cnn,
        "resnet50": resnet50,
        "bert_base": bert_base,
        "llama7b": llama7b,
        "llama70b": llama70b,
    }
    return factories[name]


def build(name: str, kind: str = "real", batch: int = 1) -> Built:
    """Build ``name`` as ``kind``: ``real`` (random weights), ``fake`` or ``meta``.

    ``fake`` is the plugin's ``flops.abstract()`` scope (a ``FakeTensorMode``); ``meta``
    builds under ``torch.device("meta")``, which is what tools without fake-tensor support
    can be handed.
    """
    import torch

    torch.manual_seed(0)
    factory = _factory(name, batch)
    if kind == "real":
        model, args = factory()
        return Built(model, args)
    if kind == "fake":
        from pytest_flopbudget import FlopCounter

        scope = FlopCounter(flops_per_mac=1).abstract()
        with scope:
            model, args = factory()
        return Built(model, args, scope)
    if kind == "meta":
        with torch.device("meta"):
            model, args = factory()
        return Built(model, args)
    raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")


def scope_of(built: Built) -> contextlib.AbstractContextManager[Any]:
    """Re-enter the fake scope the model was made in (a no-op for real and meta models)."""
    return built.scope if built.scope is not None else contextlib.nullcontext()
