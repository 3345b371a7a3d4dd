"""A Lightning model, recorded by one line: `autotrack.autolog()` adds an AutotrackCallback to
every Trainer (or pass `callbacks=[AutotrackCallback()]` yourself).

    python examples/lightning_mlp.py && autotrack show latest
"""

import autotrack

autotrack.autolog()

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


class MLP(L.LightningModule):
    def __init__(self, hidden: int = 32, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/mse", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


L.seed_everything(0)
x = torch.randn(512, 8)
y = x[:, :2].sum(dim=1, keepdim=True)
train = DataLoader(TensorDataset(x[:448], y[:448]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[448:], y[448:]), batch_size=64)
trainer = L.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir="examples-lightning")
trainer.fit(MLP(), train, val)
