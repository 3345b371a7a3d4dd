"""scikit-learn, recorded by one line: `autotrack.autolog()` (or wrap an estimator in `Tracked`).

    python examples/sklearn_forest.py && autotrack runs --experiment iris

The grid search becomes one parent run with one child run per candidate; the final fit is a run of
its own with training and validation metrics and the model stored with skops.
"""

import autotrack

autotrack.autolog(experiment="iris")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402

X, y = load_iris(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
search = GridSearchCV(RandomForestClassifier(random_state=0), {"n_estimators": [10, 30], "max_depth": [2, 4]}, cv=3)
search.fit(X_train, y_train)
print("best params:", search.best_params_)
model = RandomForestClassifier(random_state=0, **search.best_params_).fit(X_train, y_train)
print("test accuracy:", model.score(X_test, y_test))
