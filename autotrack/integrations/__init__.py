"""Framework integrations. Importing one by its path is the opt-in:
``from autotrack.integrations.lightning import AutotrackCallback``.

This package registers the built-in integrations with ``autotrack.autolog()``; importing it
imports no framework. Third-party integrations register the same way, through the entry-point
group ``autotrack.integrations`` (see :mod:`autotrack.integrations.base`).
"""

from autotrack.integrations.base import register_integration, register_model_loader

register_integration(
    "pytorch", modules=("torch",), autolog="autotrack.integrations.torch:autolog",
    seeds="autotrack.integrations.torch.seeds:install",
    fingerprint="autotrack.integrations.torch.data:register_fingerprinters",
    aliases=("torch",),
)
register_integration(
    "lightning", modules=("lightning", "pytorch_lightning"), autolog="autotrack.integrations.lightning:autolog",
    seeds="autotrack.integrations.lightning.seeds:install",
)
# scikit-learn and XGBoost take only these two autolog keywords until they move to the contract.
register_integration("sklearn", modules=("sklearn",), autolog="autotrack.integrations.sklearn:autolog",
                     options=("disable", "log_models"))
register_integration("xgboost", modules=("xgboost",), autolog="autotrack.integrations.xgboost:autolog",
                     fingerprint="autotrack.integrations._xgboost_data:register_fingerprinters",
                     options=("disable", "log_models"))
register_integration("lightgbm", modules=("lightgbm",), autolog="autotrack.integrations.lightgbm:autolog")
register_integration("keras", modules=("keras",), autolog="autotrack.integrations.keras:autolog")
register_integration("transformers", modules=("transformers",),
                     autolog="autotrack.integrations.transformers:autolog")
register_integration("optuna", modules=("optuna",), autolog="autotrack.integrations.optuna:autolog")

# How autotrack.load_model reads each framework's registered versions (imported only when one loads).
_TORCH_LOADER = "autotrack.integrations.torch.loading:load_registered"
register_model_loader("sklearn", "autotrack.integrations.sklearn._loading:load_registered", formats=("skops", "joblib"),
                      suffixes={".skops": "skops", ".joblib": "joblib", ".pkl": "joblib"}, extra="sklearn")
register_model_loader("pytorch", _TORCH_LOADER, formats=("torch",), suffixes={".pt": "torch", ".pth": "torch"},
                      extra="torch")
register_model_loader("lightning", _TORCH_LOADER, suffixes={".ckpt": "torch"}, extra="lightning")
register_model_loader("xgboost", "autotrack.integrations.xgboost:load_registered", formats=("ubj", "json"),
                      suffixes={".ubj": "ubj", ".json": "json"}, extra="xgboost")
