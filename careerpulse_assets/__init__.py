"""CareerPulse: Muse job postings → bronze → silver → KNN imputation → gold daily counts."""

# `defs` is built from the environment when first asked for (by Dagster, or an import of it), not
# when the package is imported: `python -m careerpulse_assets.ops.run` imports the package first and
# must be able to report a bad setting in one line instead of a traceback.


def __getattr__(name: str):
    if name == "defs":
        from .definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return ["defs"]  # Dagster finds Definitions among a module's members


__all__ = ["defs"]
