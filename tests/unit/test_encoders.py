"""The encoder registry and the cache / every-k wrappers, with a counting stand-in encoder."""

import pytest
import torch

from renshu.encoders.base import (
    CachedEncoder,
    Encoder,
    EveryK,
    coerce_option,
    encoder_names,
    make_encoder,
    model_source,
    to_images,
)


class SumEncoder(Encoder):
    """features = (sum of the row, number of the call that computed it); counts its work."""

    name = "sum"
    out_dim = 2
    device = torch.device("cpu")

    def __init__(self):
        self.calls = 0
        self.rows = 0

    def encode(self, obs, done=None):
        self.calls += 1
        self.rows += obs.shape[0]
        total = obs.reshape(obs.shape[0], -1).float().sum(1)
        return torch.stack([total, torch.full_like(total, float(self.calls))], dim=1)


def test_stand_in_follows_the_protocol():
    assert isinstance(SumEncoder(), Encoder)
    assert isinstance(CachedEncoder(SumEncoder(), 4), Encoder)
    assert isinstance(EveryK(SumEncoder(), 2), Encoder)


def test_cache_runs_the_model_once_per_distinct_uncached_row():
    inner = SumEncoder()
    enc = CachedEncoder(inner, max_entries=3)
    a, b, c, d = (torch.full((2, 2), v, dtype=torch.uint8) for v in (1, 2, 3, 4))
    out = enc.encode(torch.stack([a, b, a, a]))
    assert out[:, 0].tolist() == [4.0, 8.0, 4.0, 4.0]
    assert (inner.calls, inner.rows, enc.hits, enc.misses) == (1, 2, 2, 2)
    out = enc.encode(torch.stack([b, a]))
    assert out.tolist() == [[8.0, 1.0], [4.0, 1.0]]  # computed by call 1, served from the cache
    assert (inner.calls, inner.rows, enc.hits, enc.misses) == (1, 2, 4, 2)
    enc.encode(torch.stack([c, d]))  # 4 distinct rows > 3 entries: the least recent (b) goes
    assert (inner.calls, inner.rows, len(enc)) == (2, 4, 3)
    out = enc.encode(torch.stack([a, b]))
    assert out.tolist() == [[4.0, 1.0], [8.0, 3.0]]  # a still cached, b recomputed by call 3
    assert enc.calls == inner.calls == 3  # attributes pass through to the inner encoder


def test_cache_keys_depend_on_dtype_and_shape():
    enc = CachedEncoder(SumEncoder(), 8)
    enc.encode(torch.zeros(1, 4, dtype=torch.uint8))
    enc.encode(torch.zeros(1, 4, dtype=torch.float32))
    enc.encode(torch.zeros(1, 2, 2, dtype=torch.uint8))
    assert enc.misses == 3 and enc.hits == 0


def test_a_batch_larger_than_the_cache_is_still_complete():
    enc = CachedEncoder(SumEncoder(), 2)
    obs = torch.arange(5, dtype=torch.float32).view(5, 1)
    assert enc.encode(obs)[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert len(enc) == 2


def test_every_k_reuses_features_and_refreshes_new_episodes():
    inner = SumEncoder()
    enc = EveryK(inner, 3)
    obs = torch.tensor([[1.0], [2.0]])
    done = torch.tensor([False, False])
    calls = [enc.encode(obs * (t + 1), done)[:, 1].tolist() for t in range(4)]
    assert calls == [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.0]]  # batch on calls 1 and 4
    out = enc.encode(obs * 10, torch.tensor([False, True]))  # env 1 starts a new episode
    assert out.tolist() == [[4.0, 2.0], [20.0, 3.0]]  # env 0 keeps what call 4 computed
    assert inner.rows == 5
    enc.reset()
    assert enc.encode(obs)[:, 1].tolist() == [4.0, 4.0]
    with pytest.raises(ValueError, match="every_k must be an int >= 1"):
        EveryK(inner, 0)


def test_registry_names_and_errors():
    assert encoder_names() == ["hf-image", "hf-text", "hf-vlm"]
    with pytest.raises(ValueError, match="unknown encoder 'hf-txt'. Did you mean 'hf-text'"):
        make_encoder("hf-txt")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['promt'\] for encoder 'hf-vlm'"):
        make_encoder("hf-vlm", promt="hi")
    # Checked before any model loads:
    with pytest.raises(ValueError, match="cache must be an int >= 0"):
        make_encoder("hf-text", cache=-1)
    with pytest.raises(ValueError, match="every_k must be an int >= 1"):
        make_encoder("hf-text", every_k="0")


def test_command_line_strings_are_converted():
    assert coerce_option("batch_size", "8", 16) == 8
    assert coerce_option("normalize", "true", False) is True
    assert coerce_option("model", "None", None) is None
    assert coerce_option("prompt", "What now?", "x") == "What now?"
    with pytest.raises(ValueError, match="encoder option batch_size must be a int, got 'many'"):
        coerce_option("batch_size", "many", 16)


def test_model_source_checks_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_source(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        model_source(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert model_source(str(tmp_path)) == str(tmp_path)
    assert model_source("llava-hf/llava-v1.6-mistral-7b-hf") == "llava-hf/llava-v1.6-mistral-7b-hf"


def test_to_images_layouts():
    chw = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    frames = to_images(chw)
    assert len(frames) == 2 and frames[0].shape == (5, 7, 3)
    assert (frames[1] == chw[1].permute(1, 2, 0).numpy()).all()
    hwc = to_images(chw.permute(0, 2, 3, 1))
    assert all((x == y).all() for x, y in zip(frames, hwc))
    stack = torch.randint(0, 256, (2, 4, 6, 6), dtype=torch.uint8)  # Atari grey frame stack
    grey = to_images(stack)[0]
    assert grey.shape == (6, 6, 3) and (grey[:, :, 1] == stack[0, -1].numpy()).all()
    floats = to_images(torch.ones(1, 3, 2, 2))[0]
    assert floats.dtype.name == "uint8" and int(floats.min()) == 255
    with pytest.raises(ValueError, match="image encoders need image observations"):
        to_images(torch.zeros(4, 12))
