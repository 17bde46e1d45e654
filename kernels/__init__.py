"""Compiled compute kernels of fastrsa, installed as ``fastrsa.kernels``.

One folder per backend (numpy/, numba/, triton/), one module per op (rdm, rank, corr, kendall).
Pure compute on validated arrays: nothing here imports from the rest of fastrsa.
"""

__all__: list[str] = []
