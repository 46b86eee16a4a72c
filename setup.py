"""Builds the compiled hot loops (raw line parser, feature window scan); the rest is in
pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(f"fraud_assets.{name}", [f"fraud_assets/{name.replace('.', '/')}.pyx"])
            for name in ("cleaning._line_parser", "features._window_scan")
        ],
        compiler_directives={"language_level": "3"},
    )
)
