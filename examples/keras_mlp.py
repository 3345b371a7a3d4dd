"""Keras 3 on the torch backend, recorded by `callbacks=[AutotrackCallback()]` (or `autotrack.autolog()`).

    KERAS_BACKEND=torch python examples/keras_mlp.py && autotrack show latest
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from autotrack.integrations.keras import AutotrackCallback  # noqa: E402

rng = np.random.default_rng(0)
X = rng.normal(size=(1000, 8)).astype("float32")
y = (X[:, 0] * X[:, 1] > 0).astype("int64")

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")], name="mlp")
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(X, y, batch_size=32, epochs=5, validation_split=0.2, verbose=0, callbacks=[AutotrackCallback()])
print("val accuracy per epoch:", [round(v, 3) for v in history.history["val_accuracy"]])
