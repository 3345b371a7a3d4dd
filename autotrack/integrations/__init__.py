"""Framework integrations. Importing one by its path is the opt-in:
``from autotrack.integrations.lightning import AutotrackCallback``."""
