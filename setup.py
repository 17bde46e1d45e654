"""Only maps the top-level kernels/ folder to the package fastrsa.kernels (see pyproject.toml).

Packages are found, not listed, so a new kernel folder cannot be left out of the wheel.
"""

from setuptools import find_packages, setup

kernels = ["fastrsa.kernels"] + [f"fastrsa.kernels.{p}" for p in find_packages("kernels")]
setup(
    packages=find_packages(include=["fastrsa", "fastrsa.*"]) + kernels,
    package_dir={"fastrsa": "fastrsa", "fastrsa.kernels": "kernels"},
)
