"""The fast training path: cached lower layers give the same outputs, both precisions train, the manifest says which."""

from __future__ import annotations

import json

import pytest
import torch
from news_signals.model.modeling import MultiHeadModel, load_encoder
from news_signals.model.train import TrainConfig, bucketed_batches, train

from tools.tiny_model import build_tiny_base_model, make_synthetic_snapshot, synthetic_rows


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return build_tiny_base_model(tmp_path_factory.mktemp("base") / "b", layers=3)


def test_forward_from_cached_lower_layers_equals_full_forward(tiny_base):
    enc, tok = load_encoder(str(tiny_base))
    model = MultiHeadModel(enc).eval()
    batch = tok([r["text"] for r in synthetic_rows(1)][:6], padding=True, return_tensors="pt")
    with torch.no_grad():
        full = model(batch["input_ids"], batch["attention_mask"])
        for k in range(4):
            hidden = model.lower_hidden(batch["input_ids"], batch["attention_mask"], k)
            part = model.forward_from_hidden(hidden, batch["attention_mask"], k)
            assert torch.allclose(full.scores, part.scores, atol=1e-6)
            for c in model.categories:
                assert torch.allclose(full.tag_logits[c], part.tag_logits[c], atol=1e-6)


def test_bucketed_batches_cover_every_row_once_in_similar_lengths():
    lengths = [(i * 7) % 50 + 1 for i in range(1000)]
    batches = bucketed_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches of 16 over lengths 1..50 spread ~45


@pytest.mark.parametrize(("path", "precision", "expected"), [
    ("fast", "fp32", "fp32+cached-lower-2+bucketed"),
    ("fast", "bf16", "bf16+cached-lower-2+bucketed"),
    ("full", "fp32", "fp32+full"),
])
def test_training_paths_record_themselves_and_freeze_the_lower_layers(tmp_path, tiny_base, path, precision, expected):
    snap = make_synthetic_snapshot(tmp_path / "snap")
    config = TrainConfig(epochs=1, batch_size=16, lr=1e-3, head_lr_multiplier=5.0, log_every=0,
                         train_path=path, precision=precision, frozen_layers=2)
    out = train(snap, str(tiny_base), tmp_path / "m", config)
    manifest = json.loads((out / "news_signals.json").read_text())
    training = manifest["metrics"]["training"]
    assert training["path"] == expected
    assert training["examples"] > 0 and training["examples_per_s"] > 0
    from safetensors.torch import load_file
    before, after = load_file(str(tiny_base / "model.safetensors")), load_file(str(out / "model.safetensors"))
    lower = [k for k in before if "layer.0." in k or "embeddings.word" in k]
    top = [k for k in before if "layer.2." in k and k in after]
    assert lower and top
    frozen_same = all(torch.equal(before[k], after[k]) for k in lower if k in after)
    assert frozen_same == (path == "fast")
    assert any(not torch.equal(before[k], after[k]) for k in top)


def test_bad_train_path_is_refused():
    with pytest.raises(ValueError, match="train_path"):
        TrainConfig(train_path="turbo")


@pytest.mark.parametrize(("flag", "expected"), [("amx_bf16", "bf16"), ("", "fp32")])
def test_auto_precision_trains_in_bf16_only_on_a_cpu_with_bf16_instructions(monkeypatch, flag, expected):
    import news_signals.model.bf16 as bf16
    from news_signals.model import train as train_module

    if torch.cuda.is_available():
        pytest.skip("on CUDA auto means CUDA autocast")
    monkeypatch.setattr(bf16, "native_bf16", lambda: flag)
    device, autocast, dtype = train_module._device_and_autocast("auto")
    assert device.type == "cpu" and train_module._precision_name(dtype) == expected
    with autocast():  # the context the trainer enters: a real autocast (or none) of that dtype
        out = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert out.dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)
    forced = train_module._device_and_autocast("fp32")  # asked for fp32: fp32 whatever the CPU
    assert forced[2] is None
