"""Only maps the top-level kernels/ folder to the package fastrsa.kernels (see pyproject.toml)."""

from setuptools import setup

setup(
    packages=[
        "fastrsa",
        "fastrsa.kernels",
        "fastrsa.kernels.numba",
        "fastrsa.kernels.numpy",
        "fastrsa.kernels.triton",
    ],
    package_dir={"fastrsa": "fastrsa", "fastrsa.kernels": "kernels"},
)
