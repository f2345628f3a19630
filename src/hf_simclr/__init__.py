"""hf_simclr: SimCLR (Chen et al. 2020) as a Hugging Face model package.

`import hf_simclr` is cheap (no torch): the model classes are imported when first used, so that the scripts'
`--help` and argument errors answer at once. It still registers the classes with transformers' Auto classes
(so that `AutoModel.from_pretrained` needs no `trust_remote_code` for a SimCLR folder): when transformers'
`AutoConfig`, `AutoModel*` or `AutoImageProcessor` module is imported (now, or later in this process),
the matching registration runs right after it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "SimCLRConfig": "configuration_simclr",
    "SimCLRImageProcessor": "image_processing_simclr",
    "NTXentLoss": "loss",
    "NTXentOutput": "loss",
    "SogCLRState": "loss",
    "contrastive_accuracy": "loss",
    "dcl_loss": "loss",
    "gather_with_grad": "loss",
    "nt_xent_loss": "loss",
    "sogclr_loss": "loss",
    "SimCLRForImageClassification": "modeling_simclr",
    "SimCLRForPreTraining": "modeling_simclr",
    "SimCLRForPreTrainingOutput": "modeling_simclr",
    "SimCLRModel": "modeling_simclr",
    "SimCLRPreTrainedModel": "modeling_simclr",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def _register_config() -> None:
    from transformers import AutoConfig

    from .configuration_simclr import SimCLRConfig

    AutoConfig.register("simclr", SimCLRConfig, exist_ok=True)


def _register_models() -> None:
    from transformers import AutoModel, AutoModelForImageClassification, AutoModelForPreTraining

    from .configuration_simclr import SimCLRConfig
    from .modeling_simclr import SimCLRForImageClassification, SimCLRForPreTraining, SimCLRModel

    AutoModel.register(SimCLRConfig, SimCLRModel, exist_ok=True)
    AutoModelForPreTraining.register(SimCLRConfig, SimCLRForPreTraining, exist_ok=True)
    AutoModelForImageClassification.register(SimCLRConfig, SimCLRForImageClassification, exist_ok=True)


def _register_image_processor() -> None:
    from transformers import AutoImageProcessor

    from .configuration_simclr import SimCLRConfig
    from .image_processing_simclr import SimCLRImageProcessor

    # One class serves both of transformers' backends: the view is computed by our own PIL + torch code.
    AutoImageProcessor.register(
        SimCLRConfig,
        image_processor_classes={"pil": SimCLRImageProcessor, "torchvision": SimCLRImageProcessor},
        exist_ok=True,
    )


# transformers module -> the registration that needs it. None of hf_simclr's own modules imports
# `modeling_auto` or `image_processing_auto`, and `configuration_simclr` does not import `configuration_auto`,
# so a registration never runs while the module it imports is half-initialised.
_REGISTRATIONS = {
    "transformers.models.auto.configuration_auto": _register_config,
    "transformers.models.auto.modeling_auto": _register_models,
    "transformers.models.auto.image_processing_auto": _register_image_processor,
}


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Runs a registration right after transformers' Auto module it needs is imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _REGISTRATIONS:
            return None
        sys.meta_path.remove(self)  # find the real module (and only once per name)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, register = spec.loader, _REGISTRATIONS[fullname]

        class Loader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> ModuleType | None:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)
                register()

        spec.loader = Loader()
        return spec


for _module, _register in _REGISTRATIONS.items():
    if _module in sys.modules:
        _register()
if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterImport())
