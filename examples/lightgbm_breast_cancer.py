"""LightGBM, recorded by one line: `autotrack.autolog()` (or `callbacks=[AutotrackCallback()]`).

    python examples/lightgbm_breast_cancer.py && autotrack show latest
"""

import autotrack

autotrack.autolog(experiment="breast-cancer")

import lightgbm as lgb  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.1, num_leaves=15, verbose=-1)
model.fit(X_train, y_train, eval_X=(X_val,), eval_y=(y_val,), eval_names=["val"], eval_metric="auc",
          callbacks=[lgb.early_stopping(10, verbose=False)])
print("best iteration:", model.best_iteration_, "val auc:", model.best_score_["val"]["auc"])
