"""Every module of the package imports: an import that resolves nowhere (code that no test runs) fails here."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import hf_simclr

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(hf_simclr.__path__, prefix="hf_simclr."))


def test_the_package_has_its_modules():
    assert {"hf_simclr.benchmark.training", "hf_simclr.folder_format", "hf_simclr.pretraining.loop"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name):
    importlib.import_module(name)
