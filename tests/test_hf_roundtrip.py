"""HuggingFace both ways, through transformers' own entry points.

Out: `export` writes a folder that transformers.AutoTokenizer and AutoModelForCausalLM load
with nothing else to say: the same token ids as ours on a held-out text, in both tokenizer
modes, the same logits, and the same greedy continuation, token for token.
In: folders that transformers saved from OpenAIGPTModel, OpenAIGPTLMHeadModel and
OpenAIGPTDoubleHeadsModel, in float32, float16 and bfloat16, load here with transformers'
logits and, in float32, exactly the values transformers reads.
In CI these tests must run (torch and transformers are dev requirements); elsewhere they skip.
"""

import os

import numpy as np
import pytest

from minigpt1 import GPT, GPTConfig, from_pretrained
from minigpt1.corpus.text_folders import SAMPLE_DIR
from minigpt1.jobs.pretrain import PretrainPlan, run_pretraining
from minigpt1.jobs.run_folder import export_run, load_model
from minigpt1.model.generate import generate
from minigpt1.tokenizer.bpe import GPT1_SPECIAL_TOKENS, BPETokenizer
from minigpt1.training.checkpoint import save_checkpoint
from minigpt1.training.lm_objective import TrainConfig
from minigpt1.training.optim import AdamW
from tests.conftest import require

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local directories only, never the hub

# not in the sample corpus: punctuation, digits, accents, emoji, CJK, a tab, newlines, runs
# of spaces, a CRLF, a contraction, and special-token names written as plain text
HELD_OUT = ("Held-out: naïve Zoë paid €3.50 (or 4$?) for crème brûlée — 100% sure!!\n\n"
            "  Two  spaces,\tone tab; 🤗🎉 東京 ΑΘΗΝΑ... don't\r\nEND _start_ <unk>")
CLASSES = {"gpt1": "OpenAIGPTTokenizer", "bytes": "GPT2Tokenizer"}
CFG = GPTConfig(vocab_size=300, n_ctx=32, n_embd=48, n_layer=2, n_head=4)


@pytest.fixture(scope="module")
def torch():
    return require("torch")


@pytest.fixture(scope="module")
def hf(torch):
    return require("transformers")


@pytest.fixture(scope="module", params=["bytes", "gpt1"])
def exported(request, tmp_path_factory):
    """A run pre-trained 2 steps on the sample corpus in one tokenizer mode, and its export
    (by default its best checkpoint): (mode, run folder, exported folder)."""
    mode, base = request.param, tmp_path_factory.mktemp(f"run-{request.param}")
    train = TrainConfig(max_steps=2, batch_size=2, micro_batch_size=2, warmup_steps=1,
                        eval_windows=2, log_every=1)
    run_pretraining(PretrainPlan(SAMPLE_DIR, base / "run", "tiny", train, vocab_size=400,
                                 bpe_mode=mode, n_ctx=32, n_layer=2, n_embd=32, n_head=2),
                    progress=False)
    return mode, base / "run", export_run(base / "run", base / "export")


def test_auto_tokenizer_gives_our_ids_on_a_held_out_text(hf, exported):
    mode, run, folder = exported
    ours = BPETokenizer.load(run / "tokenizer")
    theirs = hf.AutoTokenizer.from_pretrained(folder)
    assert type(theirs).__name__ == CLASSES[mode] and ours.mode == mode
    assert theirs.model_max_length == 32  # the model's n_ctx
    ids = ours.encode(HELD_OUT)
    assert theirs(HELD_OUT)["input_ids"] == ids  # as a user calls it, special tokens "added"
    assert theirs.decode(ids) == ours.decode(ids)
    # guards: the text reaches what differs between the modes, and merges happened
    pieces = ours.tokens(HELD_OUT)
    merged = {a + b for a, b in ours.merges}
    assert sum(piece in merged for piece in pieces) >= 10
    if mode == "gpt1":  # the emoji are unknown, the accents stripped
        assert "<unk>" in pieces and not any("ï" in piece for piece in pieces)
    else:
        assert ours.decode(ids) == HELD_OUT


def test_special_tokens_keep_their_ids_and_stay_text_in_text(hf, tmp_path):
    for mode in ("gpt1", "bytes"):
        ours = BPETokenizer.train([HELD_OUT * 3], 300, mode, progress=False)
        ours.add_special_tokens(GPT1_SPECIAL_TOKENS)
        ours.save_pretrained(tmp_path / mode, model_max_length=64)
        theirs = hf.AutoTokenizer.from_pretrained(tmp_path / mode)
        assert theirs.convert_tokens_to_ids(list(GPT1_SPECIAL_TOKENS)) == [
            ours.special_id(name) for name in GPT1_SPECIAL_TOKENS]
        assert set(GPT1_SPECIAL_TOKENS) <= set(theirs.all_special_tokens)
        text = "_start_ one tab _delimiter_ two spaces _classify_"
        assert theirs(text)["input_ids"] == ours.encode(text)  # names in text are text
        with_specials = ours.encode(text, allowed_special="all")
        assert theirs.decode(with_specials, skip_special_tokens=True).split() == (
            ours.decode(ours.encode("one tab two spaces")).split())


def lively_model():
    """Weights N(0, 0.3), biases and gains moved off 0 and 1, and a seed whose greedy
    continuation moves (the test's guards check it): at GPT-1's N(0, 0.02), or with large
    biases after the last LayerNorm, greedy decoding repeats one token forever."""
    model = GPT(GPTConfig(**{**CFG.to_dict(), "initializer_range": 0.3}), seed=4)
    rng = np.random.default_rng(104)
    for p in model.params.values():
        if p.ndim == 1:
            p += rng.normal(0, 0.1, size=p.shape).astype(np.float32)
    return model


def test_auto_model_has_our_logits_and_greedy_continuation(hf, torch, tmp_path):
    """A run folder holding lively_model, exported: transformers continues a text prompt
    greedily with the tokens our generate picks, and decodes them to our text."""
    model, run = lively_model(), tmp_path / "run"
    tokenizer = BPETokenizer.train([HELD_OUT], CFG.vocab_size, "bytes", progress=False)
    tokenizer.save(run / "tokenizer")
    save_checkpoint(run, 1, model.params, AdamW(model.params).state_dict(),
                    {"config": model.cfg.to_dict()}, val_loss=1.0)
    folder = export_run(run, tmp_path / "export")
    theirs = hf.AutoModelForCausalLM.from_pretrained(folder).eval()
    their_tokenizer = hf.AutoTokenizer.from_pretrained(folder)
    assert type(theirs).__name__ == "OpenAIGPTLMHeadModel"
    prompt = their_tokenizer("Two spaces, one", return_tensors="pt").input_ids  # (1, T)
    ours = generate(model, tokenizer.encode("Two spaces, one"), max_new_tokens=20,
                    temperature=0)
    with torch.no_grad():
        greedy = theirs.generate(prompt, max_new_tokens=20, do_sample=False)
        their_logits = theirs(input_ids=torch.from_numpy(ours)).logits.numpy()
    np.testing.assert_array_equal(greedy.numpy(), ours)
    assert their_tokenizer.decode(greedy[0]) == tokenizer.decode(ours[0])
    logits = model.forward(ours)  # (1, T + 20, V)
    assert np.abs(logits - their_logits).max() < 1e-4
    # guards: a continuation that moves, and at every step a winner ahead of the runner-up by
    # far more than the logits' tolerance, so that equal tokens are no coincidence
    T = prompt.shape[1]
    assert len(set(ours[0, T:].tolist())) >= 5
    top2 = np.sort(logits[0, T - 1 : -1], axis=-1)[:, -2:]  # the steps that chose the 20
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-3


def test_an_export_holds_the_runs_best_weights(exported):
    _, run, folder = exported
    (model, tokenizer), (again, again_tokenizer) = load_model(run, "best"), load_model(folder)
    ids = tokenizer.encode("To be, or not")
    assert again_tokenizer.encode("To be, or not") == ids
    np.testing.assert_array_equal(again.forward([ids]), model.forward([ids]))


def their_model(hf, torch):
    """transformers' OpenAIGPTLMHeadModel of CFG's size, its biases moved off 0, its gains
    off 1 and its weights 5 times larger: a misread tensor moves every logit."""
    config = hf.OpenAIGPTConfig(vocab_size=CFG.vocab_size, n_positions=CFG.n_ctx,
                                n_embd=CFG.n_embd, n_layer=CFG.n_layer, n_head=CFG.n_head)
    torch.manual_seed(7)
    model = hf.OpenAIGPTLMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(5.0)
    return model


def logits_of(torch, model, ids):
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids)).logits.float().numpy()


@pytest.mark.parametrize("saved_as", ["OpenAIGPTModel", "OpenAIGPTLMHeadModel",
                                      "OpenAIGPTDoubleHeadsModel"])
def test_folders_transformers_saves_load_here(hf, torch, tmp_path, capsys, saved_as):
    reference = their_model(hf, torch)
    saved = getattr(hf, saved_as)(reference.config)
    if saved_as == "OpenAIGPTModel":
        saved.load_state_dict(reference.transformer.state_dict())
    else:  # all but what the reference lacks: DoubleHeads' multiple-choice head
        missing, unexpected = saved.load_state_dict(reference.state_dict(), strict=False)
        assert not unexpected and all(n.startswith("multiple_choice_head.") for n in missing)
    saved.save_pretrained(tmp_path)
    capsys.readouterr()
    ours = from_pretrained(tmp_path)
    note = capsys.readouterr().err
    assert ours.cfg == GPTConfig(vocab_size=CFG.vocab_size, n_ctx=CFG.n_ctx, n_embd=CFG.n_embd,
                                 n_layer=CFG.n_layer, n_head=CFG.n_head)
    ids = np.random.default_rng(2).integers(0, CFG.vocab_size, size=(2, 12))
    assert np.abs(ours.forward(ids) - logits_of(torch, reference, ids)).max() < 1e-4
    if saved_as == "OpenAIGPTDoubleHeadsModel":
        assert note.count("\n") == 1 and note.startswith("note: ")
        assert "multiple_choice_head.summary.bias, multiple_choice_head.summary.weight" in note
    else:
        assert note == ""


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_folders_load_as_float32(hf, torch, tmp_path, dtype):
    reference = their_model(hf, torch).to(getattr(torch, dtype))
    reference.save_pretrained(tmp_path)
    ours = from_pretrained(tmp_path)
    theirs = hf.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    their_params = {name.removeprefix("transformer."): p.detach().numpy()
                    for name, p in theirs.named_parameters()}
    assert set(their_params) == set(ours.params)
    for name, value in ours.params.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, their_params[name], err_msg=name)
    # guards: the file really held halves, and of non-trivial weights
    embedding = ours.params["tokens_embed.weight"]
    if dtype == "float16":
        assert np.array_equal(embedding.astype(np.float16).astype(np.float32), embedding)
    else:  # bfloat16: the low 16 bits of every float32 are zero
        assert not (embedding.view(np.uint32) & 0xFFFF).any()
    assert np.abs(embedding).max() > 0.1
    ids = np.random.default_rng(3).integers(0, CFG.vocab_size, size=(2, 12))
    assert np.abs(ours.forward(ids) - logits_of(torch, theirs, ids)).max() < 1e-4
