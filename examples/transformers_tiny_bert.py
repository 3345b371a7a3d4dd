"""Hugging Face Transformers, recorded by `callbacks=[AutotrackCallback()]` (or `autotrack.autolog()`).

A tiny BERT built from a config and a word-level tokenizer built in memory: nothing is downloaded.

    python examples/transformers_tiny_bert.py && autotrack show latest
"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from tokenizers.pre_tokenizers import Whitespace  # noqa: E402
from transformers import (AutoModelForSequenceClassification, BertConfig, PreTrainedTokenizerFast,  # noqa: E402
                          Trainer, TrainingArguments)

from autotrack.integrations.transformers import AutotrackCallback  # noqa: E402

words = ["[PAD]", "[UNK]", *(f"w{i}" for i in range(50))]
backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
backend.pre_tokenizer = Whitespace()
tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                    name_or_path="tiny-word-level")


class Sentences(torch.utils.data.Dataset):
    """Label 1 when the first word's number is above 25."""

    def __init__(self, n: int, seed: int) -> None:
        numbers = torch.randint(0, 50, (n, 8), generator=torch.Generator().manual_seed(seed))
        self.encoded = tokenizer([" ".join(f"w{int(i)}" for i in row) for row in numbers],
                                 padding="max_length", max_length=8, return_tensors="pt")
        self.labels = (numbers[:, 0] > 25).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i],
                "labels": self.labels[i]}


torch.manual_seed(0)
model = AutoModelForSequenceClassification.from_config(BertConfig(
    vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=16, num_labels=2, pad_token_id=0))
with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(out, num_train_epochs=3, per_device_train_batch_size=16, learning_rate=1e-3,
                             logging_steps=5, eval_strategy="epoch", save_strategy="epoch", save_total_limit=2,
                             load_best_model_at_end=True, report_to="none", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Sentences(256, 1), eval_dataset=Sentences(64, 2),
                      processing_class=tokenizer, callbacks=[AutotrackCallback()])
    trainer.train()
    print("best checkpoint:", os.path.basename(trainer.state.best_model_checkpoint or ""))
