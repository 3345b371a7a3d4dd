"""A plain PyTorch training script with no autotrack in it; the autolog suite runs it with and
without `autotrack run`. It prints, per optimizer step, the loss and the gradient norm before
clipping as it computes them itself (the independent truth the suite compares against)."""

import argparse
import math
import os
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--workers", type=int, default=0)
parser.add_argument("--clip", type=float, default=1.0)
parser.add_argument("--out", default="model.pt")
parser.add_argument("--fail-at", type=int, default=-1)
parser.add_argument("--pause-at", type=int, default=-1, help="print 'paused' and sleep at this step")
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x[:, :1] * 2 - x[:, 1:2]).tanh()
loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                    worker_init_fn=lambda i: print(f"worker {os.getpid()}", flush=True))
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.8, 0.95))
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
print(f"params {sum(p.numel() for p in model.parameters())}", flush=True)

step = 0
for epoch in range(args.epochs):
    for xb, yb in loader:
        if step == args.fail_at:
            raise RuntimeError(f"failing on purpose at step {step}")
        if step == args.pause_at:
            print("paused", flush=True)
            time.sleep(60)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(xb), yb)
        loss.backward()
        norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters()))
        lr = optimizer.param_groups[0]["lr"]
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        scheduler.step()
        print(f"step {step} loss {loss.item()!r} norm {norm!r} lr {lr!r}", flush=True)
        step += 1
    torch.save({"epoch": epoch, "model": model.state_dict()}, args.out)
