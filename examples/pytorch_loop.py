"""A plain PyTorch training loop, recorded by one line: `autotrack.autolog()`.

    python examples/pytorch_loop.py --epochs 3 && autotrack show latest

Recorded with no other change: train/loss, train/grad_norm and train/lr at every optimizer step,
the optimizer and model sections, argparse arguments as params, the seed, the checkpoint written
with torch.save, hardware, packages and git state. (`autotrack run train.py` does the same for a
script without the line.)
"""

import argparse

import autotrack

autotrack.autolog()

import torch  # noqa: E402
from torch import nn  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(512, 16)
y = (x[:, :4].sum(dim=1, keepdim=True) > 0).float()
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * 16)

for epoch in range(args.epochs):
    for i in range(0, len(x), 32):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[i : i + 32]), y[i : i + 32])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
    torch.save(model.state_dict(), "examples-pytorch-loop.pt")
    print(f"epoch {epoch}: loss {loss.item():.4f}")
