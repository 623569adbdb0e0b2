"""Re-create the pre-trained model the project ships, data/pretrained/shakespeare-6x256/.

    python data/pretrained/make.py                 # pre-train (or finish) the run, then ship it
    python data/pretrained/make.py --no-training   # ship the run as it is

1. Pre-train with PRETRAIN below (the project's own `pretrain` command on the Shakespeare
   training split), resuming the run folder if it already holds part of the run.
2. Export its best checkpoint as a HuggingFace folder: config.json, model.safetensors and the
   tokenizer's files.
3. Score it on every window of the held-out split (`minigpt1 evaluate`).
4. Write the model card, README.md, and card.json beside the weights: the command, seed, wall
   time and machine, the data and tokenizer fingerprints, the weights' sha256, the held-out
   bits per character and a sample.
"""

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from minigpt1.corpus.shakespeare import sha256_of  # noqa: E402
from minigpt1.jobs.evaluate import score_held_out  # noqa: E402
from minigpt1.jobs.run_folder import export_run, load_model  # noqa: E402
from minigpt1.model.generate import generate  # noqa: E402

NAME = "shakespeare-6x256"
RUN = Path("runs") / NAME
PRETRAIN = ["pretrain", "--out", str(RUN), "--vocab-size", "2048", "--n-layer", "6",
            "--n-embd", "256", "--n-head", "8", "--n-ctx", "256", "--dropout", "0.1",
            "--batch-size", "8", "--lr", "1e-3", "--warmup-steps", "500", "--max-steps", "8000",
            "--eval-every", "250", "--keep-every", "500", "--eval-windows", "64", "--seed", "0"]
TEXT_DIR = Path("data") / "shakespeare" / "texts"
PROMPT = "HAMLET."


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-training", action="store_true",
                        help="ship the run folder as it is (it must have finished)")
    parser.add_argument("--wall-minutes", type=float,
                        help="the training's wall time, when it ran outside this script")
    parser.add_argument("--wall-note", default="",
                        help="what the card should say about that time (e.g. a shared machine)")
    args = parser.parse_args()
    os.chdir(ROOT)
    minutes = args.wall_minutes
    if not args.no_training:
        started = time.perf_counter()
        resume = ["--resume"] if (RUN / "run.json").exists() else []
        subprocess.run([sys.executable, "-m", "minigpt1", *PRETRAIN, *resume], check=True)
        minutes = minutes or (time.perf_counter() - started) / 60
    out = Path("data") / "pretrained" / NAME
    export_run(RUN, out, which="best", force=True)
    model, tokenizer = load_model(out)
    score = score_held_out(model, tokenizer, TEXT_DIR)
    card = card_facts(out, model, tokenizer, score, minutes, args.wall_note)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(card), encoding="utf-8")
    print(f"{out}: {score.bits_per_char:.3f} bits per character on the held-out split")


def card_facts(out, model, tokenizer, score, minutes, wall_note=""):
    run = json.loads((RUN / "run.json").read_text(encoding="utf-8"))
    index = json.loads((RUN / "checkpoints" / "index.json").read_text(encoding="utf-8"))
    ids = generate(model, [tokenizer.encode(PROMPT)], 200, temperature=0.8, seed=0)[0].tolist()
    return {
        "command": "python -m minigpt1 " + " ".join(PRETRAIN),
        "seed": run["train"]["seed"],
        "checkpoint": index["best"],
        "config": run["config"],
        "train": run["train"],
        "wall_minutes": None if minutes is None else round(minutes, 1),
        "wall_note": wall_note,
        "machine": machine(),
        "texts_sha256": hashlib.sha256(json.dumps(run["texts"], sort_keys=True)
                                       .encode()).hexdigest(),
        "tokenizer_fingerprint": run["tokenizer_fingerprint"],
        "weights_sha256": sha256_of(out / "model.safetensors"),
        "held_out": {"bits_per_char": round(score.bits_per_char, 4),
                     "bits_per_byte": round(score.bits_per_byte, 4),
                     "nats_per_token": round(score.nats_per_token, 4),
                     "tokens": score.tokens, "chars": score.chars},
        "evaluate": f"python -m minigpt1 evaluate --checkpoint {out} --text-dir {TEXT_DIR}",
        "sample_prompt": PROMPT,
        "sample": tokenizer.decode(ids),
    }


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()} {platform.machine()}, " \
           f"Python {platform.python_version()}"


def held_out_detail(score):
    return (f"{score['bits_per_byte']:.3f} per byte, {score['nats_per_token']:.3f} nats per "
            f"token, over {score['chars']:,} characters")


def model_card(card):
    cfg, score = card["config"], card["held_out"]
    return f"""# {NAME}: a GPT-1 pre-trained on Shakespeare

A {cfg['n_layer']}-layer, {cfg['n_embd']}-wide GPT-1 ({cfg['n_head']} heads, {cfg['n_ctx']} \
positions, a {cfg['vocab_size']:,}-token byte-level BPE) pre-trained with L1 on the training \
split of Shakespeare's complete works (the first 90% of every work), by this project's own \
`pretrain` command. It is a HuggingFace openai-gpt folder. Load it with \
`minigpt1.from_pretrained("data/pretrained/{NAME}")`, with `--checkpoint \
data/pretrained/{NAME}` on the command line, or with transformers' `AutoModelForCausalLM`.

| | |
|---|---|
| held-out bits per character | **{score['bits_per_char']:.3f}** ({held_out_detail(score)}) |
| command | `{card['command']}` |
| seed | {card['seed']} |
| checkpoint | {card['checkpoint']} (the lowest validation loss) |
| wall time | {card['wall_minutes']} minutes{card['wall_note'] and '; ' + card['wall_note']} |
| machine | {card['machine']} |
| texts (sha256 of run.json's digests) | `{card['texts_sha256']}` |
| tokenizer fingerprint | `{card['tokenizer_fingerprint']}` |
| model.safetensors sha256 | `{card['weights_sha256']}` |

Re-create it: `python data/pretrained/make.py` (prepares nothing: run `python -m minigpt1
prepare shakespeare` first). Reproduce the score: `{card['evaluate']}`.

## Sample

`python -m minigpt1 generate --checkpoint data/pretrained/{NAME} --prompt "{PROMPT}"
--temperature 0.8 --seed 0 --max-new-tokens 200` writes:

```
{card['sample']}
```
"""


if __name__ == "__main__":
    main()
