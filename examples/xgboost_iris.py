"""XGBoost, recorded by one line: `autotrack.autolog()` (or `callbacks=[AutotrackCallback()]`).

    python examples/xgboost_iris.py && autotrack show latest
"""

import autotrack

autotrack.autolog(experiment="iris")

import xgboost as xgb  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

X, y = load_iris(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
dtrain = xgb.DMatrix(X_train, label=y_train)
dval = xgb.DMatrix(X_val, label=y_val)
params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3, "eval_metric": ["mlogloss", "merror"]}
bst = xgb.train(params, dtrain, num_boost_round=30, evals=[(dtrain, "train"), (dval, "val")], early_stopping_rounds=5)
print("best iteration:", bst.best_iteration)
