"""The core API by hand: fit y = 3x + 2 by gradient descent and record the run.

    python examples/quickstart.py && autotrack show latest

(The framework examples next to this file need no logging calls at all.)
"""

import random

import autotrack

random.seed(0)
xs = [random.uniform(-1, 1) for _ in range(256)]
ys = [3 * x + 2 + random.gauss(0, 0.1) for x in xs]
config = {"lr": 0.1, "epochs": 60, "init": {"w": 0.0, "b": 0.0}}

with autotrack.start_run(name="quickstart", experiment="examples", params=config) as run:
    w, b = config["init"]["w"], config["init"]["b"]
    for epoch in range(config["epochs"]):
        grad_w = sum(2 * (w * x + b - y) * x for x, y in zip(xs, ys)) / len(xs)
        grad_b = sum(2 * (w * x + b - y) for x, y in zip(xs, ys)) / len(xs)
        w -= config["lr"] * grad_w
        b -= config["lr"] * grad_b
        mse = sum((w * x + b - y) ** 2 for x, y in zip(xs, ys)) / len(xs)
        run.log_metrics({"train/loss": mse, "train/grad_norm": (grad_w**2 + grad_b**2) ** 0.5, "train/lr": config["lr"]}, step=epoch)
    run.log_dict({"w": w, "b": b}, "model.json", kind="model")
    print(f"run {run.name} ({run.id[:8]}): w={w:.3f} b={b:.3f} final mse={mse:.4f}")
