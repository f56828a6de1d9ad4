"""CareerPulse: Muse job postings → bronze → silver → KNN imputation → gold daily counts."""

from .definitions import defs

__all__ = ["defs"]
