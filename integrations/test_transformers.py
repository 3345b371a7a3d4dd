"""End-to-end suite of the Transformers integration: a tiny BERT built from a config (nothing is
downloaded) with a word-level tokenizer built in memory, trained by the real ``Trainer`` and
asserted against the Trainer's own record (``state.log_history``, ``best_model_checkpoint``)."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'autotrack[transformers]')")
pytest.importorskip("accelerate", reason="the Trainer needs accelerate (pip install 'autotrack[transformers]')")

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import (AutoModelForSequenceClassification, BertConfig, PreTrainedTokenizerFast, Trainer,
                          TrainingArguments)

import autotrack
from autotrack.integrations.transformers import AutotrackCallback, autolog, is_secret_field, metric_key

SECRET = "hf_abcdefghijklmnopqrstuvwxyz0123"
WORDS = ["[PAD]", "[UNK]", *(f"w{i}" for i in range(30))]


@pytest.fixture(autouse=True)
def _no_patches() -> Any:
    yield
    autolog(disable=True)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   name_or_path="tiny-word-level")


class Sentences(torch.utils.data.Dataset):
    """Label 1 when the first word's number is above 15, tokenized by the in-memory tokenizer."""

    def __init__(self, tokenizer: Any, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        numbers = torch.randint(0, 30, (n, 6), generator=g)
        texts = [" ".join(f"w{int(i)}" for i in row) for row in numbers]
        self.encoded = tokenizer(texts, padding="max_length", max_length=6, return_tensors="pt")
        self.labels = (numbers[:, 0] > 15).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i],
                "labels": self.labels[i]}


def tiny_model() -> Any:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2, pad_token_id=0)
    return AutoModelForSequenceClassification.from_config(config)


def make_trainer(tmp_path: Path, tokenizer: Any, callbacks: list[Any] | None = None, model: Any = None,
                 **overrides: Any) -> Trainer:
    args = dict(output_dir=str(tmp_path / "out"), report_to="none", logging_steps=1, num_train_epochs=2,
                per_device_train_batch_size=4, per_device_eval_batch_size=8, eval_strategy="epoch",
                save_strategy="epoch", use_cpu=True, disable_tqdm=True, learning_rate=1e-3, seed=0,
                hub_token=SECRET)
    args.update(overrides)
    return Trainer(model=model if model is not None else tiny_model(), args=TrainingArguments(**args),
                   train_dataset=Sentences(tokenizer, 16, 1), eval_dataset=Sentences(tokenizer, 8, 2),
                   processing_class=tokenizer, callbacks=callbacks)


def expected_series(log_history: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        for name, value in entry.items():
            if name not in ("step", "epoch") and isinstance(value, (int, float)):
                series.setdefault(metric_key(name), []).append((entry["step"], float(value)))
    return series


def recorded(rec: autotrack.RunRecord, key: str) -> list[tuple[int, float]]:
    frame = rec.metric(key)
    return list(zip(frame["step"].tolist(), frame["value"].tolist()))


def test_every_logged_value_equals_log_history(store, tmp_path, tokenizer):
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb])
    trainer.train()
    rec = autotrack.get_run(cb.run.id)
    assert rec.status == "finished"
    expected = expected_series(trainer.state.log_history)
    assert {"train/loss", "train/grad_norm", "train/lr", "val/loss", "train/loss_mean"} <= set(expected)
    for key, points in expected.items():
        assert recorded(rec, key) == points, key
    assert [s for s, _ in recorded(rec, "train/loss")] == list(range(1, 9))  # every optimizer step
    epochs = {(e["step"], e["epoch"]) for e in trainer.state.log_history}
    assert set(recorded(rec, "epoch")) == epochs and len(recorded(rec, "epoch")) == len(epochs)


def test_grad_norm_is_the_norm_before_clipping(store, tmp_path, tokenizer, monkeypatch):
    """The Trainer's own grad_norm, checked against the norm this test computes before clipping."""
    seen: list[float] = []
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb], max_grad_norm=0.01)

    def norm_now(parameters: Any) -> None:
        grads = [p.grad.detach().flatten() for p in parameters if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.cat(grads))))

    if hasattr(trainer, "_clip_grad_norm"):  # recent Transformers clip through this method
        clip = trainer._clip_grad_norm
        monkeypatch.setattr(trainer, "_clip_grad_norm", lambda model: (norm_now(model.parameters()), clip(model))[1])
    else:  # earlier ones call Accelerate's clip_grad_norm_ in the training loop
        accelerator_clip = trainer.accelerator.clip_grad_norm_

        def spy(parameters: Any, *args: Any, **kwargs: Any) -> Any:
            parameters = list(parameters)
            norm_now(parameters)
            return accelerator_clip(parameters, *args, **kwargs)

        monkeypatch.setattr(trainer.accelerator, "clip_grad_norm_", spy)
    trainer.train()
    norms = recorded(autotrack.get_run(cb.run.id), "train/grad_norm")
    assert len(norms) == len(seen) == 8
    assert [v for _, v in norms] == pytest.approx(seen, rel=1e-4)
    assert all(v > 0.01 for _, v in norms)  # before clipping to 0.01


def test_training_arguments_are_params_without_secrets(store, tmp_path, tokenizer):
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb])
    trainer.train()
    rec = autotrack.get_run(cb.run.id)
    assert rec.params["learning_rate"] == 1e-3 and rec.params["per_device_train_batch_size"] == 4
    assert rec.params["num_train_epochs"] == 2 and rec.params["eval_strategy"] == "epoch"
    assert "hub_token" not in rec.params
    assert "hub_token" in rec.info("config")["filtered_args"]
    assert rec.params["model_config.hidden_size"] == 16 and rec.params["model_config.pad_token_id"] == 0
    autotrack.flush()
    for file in store.root.rglob("*"):  # the token is nowhere in the store, in no form
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


def test_secret_field_names():
    for name in ("hub_token", "push_to_hub_token", "api_key", "wandb_api_key", "client_secret", "db_password",
                 "auth_header", "access_key"):
        assert is_secret_field(name), name
    for name in ("pad_token_id", "bos_token_id", "include_tokens_per_second", "average_tokens_across_devices",
                 "learning_rate", "tokenizer_name", "hub_model_id", "token_type_ids"):
        assert not is_secret_field(name), name
    assert is_secret_field("anything", SECRET)


def test_model_section_architecture_config_and_tokenizer(store, tmp_path, tokenizer):
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb])
    trainer.train()
    rec = autotrack.get_run(cb.run.id)
    model = rec.info("model")
    assert model["total_params"] == sum(p.numel() for p in trainer.model.parameters())
    assert model["class"] == "transformers.models.bert.modeling_bert.BertForSequenceClassification"
    assert model["config"]["hidden_size"] == 16 and model["model_type"] == "bert"
    assert model["tokenizer"]["name"] == "tiny-word-level" and model["tokenizer"]["vocab_size"] == len(WORDS)
    assert rec.params["tokenizer.name"] == "tiny-word-level" and rec.params["tokenizer.vocab_size"] == len(WORDS)
    assert "peft" not in model
    optimizer = rec.info("optimizer")
    assert optimizer["optimizers"][0]["class"].endswith("AdamW")
    data = rec.info("data")
    assert data["train"]["hash"] == autotrack.fingerprint(trainer.train_dataset)["hash"]
    assert data["eval"]["role"] == "eval" and data["eval"]["length"] == 8


def test_checkpoints_by_reference_best_flagged_rotated_marked_deleted(store, tmp_path, tokenizer):
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb], load_best_model_at_end=True, metric_for_best_model="loss",
                           save_total_limit=1)
    trainer.train()
    rec = autotrack.get_run(cb.run.id)
    arts = {a.name: a for a in rec.artifacts}
    assert set(arts) == {"checkpoint-4/model.safetensors", "checkpoint-8/model.safetensors"}
    best = Path(trainer.state.best_model_checkpoint).name
    for name, art in arts.items():
        folder = name.split("/")[0]
        assert art.kind == "checkpoint" and not art.stored and art.step == int(folder.split("-")[1])
        assert art.metadata["best"] is (folder == best)
        exists = (tmp_path / "out" / folder).is_dir()
        assert art.deleted is (not exists)
        if exists:
            digest = hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest()
            assert art.sha256 == digest
    assert rec.tags["best_model_checkpoint"] == trainer.state.best_model_checkpoint


def test_evaluate_after_training_is_appended_to_the_run(store, tmp_path, tokenizer):
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb])
    trainer.train()
    metrics = trainer.evaluate()
    rec = autotrack.get_run(cb.run.id)
    assert rec.status == "finished"
    assert recorded(rec, "val/loss")[-1] == (8, metrics["eval_loss"])
    assert len(recorded(rec, "val/loss")) == 3


def test_peft_adapter_config(store, tmp_path, tokenizer):
    peft = pytest.importorskip("peft", reason="peft is not installed")
    model = peft.get_peft_model(tiny_model(), peft.LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query", "value"]))
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb], model=model, num_train_epochs=1)
    trainer.train()
    rec = autotrack.get_run(cb.run.id)
    section = rec.info("model")
    assert section["peft"]["default"]["r"] == 2 and section["peft"]["default"]["peft_type"] == "LORA"
    assert sorted(section["peft"]["default"]["target_modules"]) == ["query", "value"]
    assert section["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert any(a.name == "checkpoint-4/adapter_model.safetensors" for a in rec.artifacts)


def test_only_the_main_process_writes(store, tmp_path, tokenizer, monkeypatch):
    cb = AutotrackCallback()
    trainer = make_trainer(tmp_path, tokenizer, [cb], num_train_epochs=1)
    monkeypatch.setattr(trainer, "is_world_process_zero", lambda: False)  # as on rank 1 of a DDP job
    trainer.train()
    trainer.evaluate()
    assert cb.run is None and len(autotrack.runs()) == 0


def test_autolog_every_trainer_gets_the_callback(store, tmp_path, tokenizer):
    autolog()
    trainer = make_trainer(tmp_path, tokenizer)
    assert sum(isinstance(c, AutotrackCallback) for c in trainer.callback_handler.callbacks) == 1
    trainer.train()
    (row,) = autotrack.runs().itertuples()
    rec = autotrack.get_run(row.id)
    assert recorded(rec, "train/loss") == expected_series(trainer.state.log_history)["train/loss"]
    autolog(disable=True)
    make_trainer(tmp_path, tokenizer).train()
    assert len(autotrack.runs()) == 1


def test_autolog_keeps_the_users_callback(store, tmp_path, tokenizer):
    autolog()
    with autotrack.start_run() as run:
        trainer = make_trainer(tmp_path, tokenizer, [AutotrackCallback(run)], num_train_epochs=1)
        assert sum(isinstance(c, AutotrackCallback) for c in trainer.callback_handler.callbacks) == 1
        trainer.train()
    assert len(autotrack.runs()) == 1


def test_autotrack_autolog_with_pytorch_records_one_run(store, tmp_path, tokenizer):
    """The Trainer steps a torch optimizer: the plain-PyTorch autolog must leave it to the callback."""
    autotrack.autolog(lightning=False, sklearn=False, xgboost=False, lightgbm=False, keras=False,
                      system_metrics=False)
    try:
        trainer = make_trainer(tmp_path, tokenizer, num_train_epochs=1)
        trainer.train()
    finally:
        autotrack.autolog(disable=True)
    autotrack.flush()
    (row,) = autotrack.runs().itertuples()
    rec = autotrack.get_run(row.id)
    assert [s for s, _ in recorded(rec, "train/loss")] == [1, 2, 3, 4]


def test_autolog_run_ends_failed_and_the_error_passes_through(store, tmp_path, tokenizer):
    autolog()

    class Explode(transformers.TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2:
                raise ValueError("user callback failed")

    trainer = make_trainer(tmp_path, tokenizer, [Explode()])
    with pytest.raises(ValueError, match="user callback failed"):
        trainer.train()
    (row,) = autotrack.runs().itertuples()
    assert autotrack.get_run(row.id).status == "failed"


def test_own_failure_is_a_warning_not_a_training_error(store, tmp_path, tokenizer, monkeypatch):
    monkeypatch.setenv("AUTOTRACK_STRICT", "0")
    import autotrack.integrations.transformers as integration

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(integration, "_training_arguments", broken)
    plain = make_trainer(tmp_path / "a", tokenizer, num_train_epochs=1)
    plain.train()
    tracked = make_trainer(tmp_path / "b", tokenizer, [AutotrackCallback()], num_train_epochs=1)
    with pytest.warns(RuntimeWarning, match="autotrack: transformers callback: start of training.*boom"):
        tracked.train()
    losses = lambda t: [e["loss"] for e in t.state.log_history if "loss" in e]  # noqa: E731
    assert losses(plain) == losses(tracked)


def test_metric_key_mapping():
    assert [metric_key(k) for k in ("loss", "grad_norm", "learning_rate", "eval_loss", "eval_accuracy",
                                    "test_f1", "train_loss", "train_runtime", "total_flos", "epoch")] == [
        "train/loss", "train/grad_norm", "train/lr", "val/loss", "val/accuracy", "test/f1", "train/loss_mean",
        "train/runtime", "total_flos", "epoch"]


def test_constructor_checks_its_arguments():
    with pytest.raises(autotrack.InvalidArgumentError, match="run"):
        AutotrackCallback(run="abc")  # type: ignore[arg-type]
    with pytest.raises(autotrack.InvalidArgumentError, match="log_checkpoints"):
        AutotrackCallback(log_checkpoints="no")  # type: ignore[arg-type]


def test_callback_pickles_without_its_live_run(store):
    with autotrack.start_run() as run:
        copy = pickle.loads(pickle.dumps(AutotrackCallback(run)))
    assert copy.run is None and copy._parent_id == run.id


@pytest.mark.parametrize("optuna_integration", [True, False], ids=["study-is-the-parent", "autolog-makes-the-parent"])
def test_hyperparameter_search_trials_are_child_runs_one_record_each(store, tmp_path, tokenizer, optuna_integration):
    """`Trainer.hyperparameter_search` under `autotrack.autolog()`: one parent, one child run per
    trial holding that trial's training (losses, its learning rate) -- no second run per trial.
    With the Optuna integration the study is the parent; switched off, autolog makes one and
    records the best trial the search returned."""
    pytest.importorskip("optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    autotrack.autolog(system_metrics=False, **({} if optuna_integration else {"optuna": False}))
    try:
        trainer = make_trainer(tmp_path, tokenizer, save_strategy="no", num_train_epochs=1)
        trainer.model_init = lambda trial=None: tiny_model()
        best = trainer.hyperparameter_search(
            direction="minimize", backend="optuna", n_trials=3,
            hp_space=lambda t: {"learning_rate": t.suggest_float("learning_rate", 1e-4, 1e-2, log=True)})
    finally:
        autotrack.autolog(disable=True)
    frame = autotrack.runs(order_by="start asc")
    parents = frame[frame["parent_id"].isna()]
    assert len(parents) == 1 and len(frame) == 4, frame[["name", "parent_id"]]
    parent = autotrack.get_run(parents["id"].iloc[0])
    children = sorted((autotrack.get_run(i) for i in frame["id"] if i != parent.id), key=lambda r: int(r.tags["trial"]))
    assert [int(c.tags["trial"]) for c in children] == [0, 1, 2]
    for child in children:
        assert child.parent_id == parent.id and child.status == "finished"
        assert child.tags["state"] == "complete"
        assert child.metric_arrays("train/loss")[1].size == 4  # 16 rows / batch 4, logged every step
        assert child.metric_arrays("train/lr")[1][0] <= child.params["learning_rate"]
    by_trial = {int(c.tags["trial"]): c for c in children}
    winner = by_trial[int(best.run_id)]
    assert winner.params["learning_rate"] == pytest.approx(best.hyperparameters["learning_rate"])
    if optuna_integration:
        assert parent.tags["autotrack.integration"] == "optuna"
        assert {c.tags.get("autotrack.training") for c in children} == {"transformers"}
        assert winner.metric_arrays("optuna/value")[1][-1] == pytest.approx(best.objective)
    else:
        assert parent.tags["autotrack.integration"] == "transformers" and parent.params["search.backend"] == "optuna"
        assert parent.params["best.learning_rate"] == pytest.approx(best.hyperparameters["learning_rate"])
        assert parent.metric_arrays("search/best_objective")[1][-1] == pytest.approx(best.objective)
        assert parent.tags["best_trial"] == str(best.run_id)
        assert [c.name for c in children] == [f"{parent.name}-trial-{i}" for i in range(3)]
