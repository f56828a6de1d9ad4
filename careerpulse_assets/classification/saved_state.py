"""What a fitted model keeps when it is saved: the same fitted model, in fewer and faster pieces.

MLflow saves scikit-learn models with skops (it builds only the types it is told to trust;
`classification/registry.py`), and the model store pickles them. Two fitted attributes made skops slow and big:

- TfidfVectorizer's `vocabulary_`, a dict of up to 50,000 terms to NumPy integers: skops writes
  every NumPy integer as a zip entry of its own (50,005 entries, 69 MB and 77 s for a model
  trained on the 1,345 shared labelled postings). `CompactTfidfVectorizer` saves it as one array
  of terms in column order instead.
- The KNN's training matrix (scipy CSR; at 100,000 postings 86,327 × 50,000 with 42.5 million
  values): skops writes sparse matrices as a compressed .npz, and zlib took 52 s of a 92 s save
  to shrink the float64 values by 30 % (BENCHMARKS.md, "MLflow logging").
  `SparseMatricesAsArrays` saves each CSR attribute as its three arrays, which skops stores as
  plain .npy files.

Loading rebuilds the same attributes; fitting, transforming and predicting are untouched.
Models saved before these classes load as they were saved.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

_CSR_SUFFIX = "__csr_arrays"


class CompactTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer whose saved state holds `vocabulary_terms_` (an array of str, term i at
    position i) instead of the `vocabulary_` dict; loading rebuilds the dict."""

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: the fitted object keeps its dict
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            terms = [""] * len(vocabulary)
            for term, column in vocabulary.items():
                terms[column] = term
            state["vocabulary_terms_"] = np.array(terms, dtype=str)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        terms = state.pop("vocabulary_terms_", None)
        if terms is not None:
            state["vocabulary_"] = {str(term): column for column, term in enumerate(terms)}
        super().__setstate__(state)


class SparseMatricesAsArrays:
    """Mixin for an estimator: each CSR matrix among its attributes is saved as (data, indices,
    indptr, shape) under `<name>__csr_arrays`, and rebuilt when loaded. Put it first among the
    bases, so that its __getstate__ wraps BaseEstimator's."""

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        for name, value in list(state.items()):
            if isinstance(value, sp.csr_matrix):
                del state[name]
                state[name + _CSR_SUFFIX] = (value.data, value.indices, value.indptr,
                                             tuple(int(n) for n in value.shape))
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        for name in [name for name in state if name.endswith(_CSR_SUFFIX)]:
            data, indices, indptr, shape = state.pop(name)
            state[name.removesuffix(_CSR_SUFFIX)] = sp.csr_matrix(
                (data, indices, indptr), shape=tuple(shape))
        super().__setstate__(state)
