"""hf_simclr: SimCLR (Chen et al. 2020) as a Hugging Face model package."""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
)

from .configuration_simclr import SimCLRConfig
from .image_processing_simclr import SimCLRImageProcessor
from .loss import NTXentLoss, NTXentOutput, contrastive_accuracy, gather_with_grad, nt_xent_loss
from .modeling_simclr import (
    SimCLRForImageClassification,
    SimCLRForPreTraining,
    SimCLRForPreTrainingOutput,
    SimCLRModel,
    SimCLRPreTrainedModel,
)

__version__ = "0.1.0"

# With hf_simclr installed, the Auto classes resolve "simclr" to these classes.
AutoConfig.register("simclr", SimCLRConfig)
AutoModel.register(SimCLRConfig, SimCLRModel)
AutoModelForPreTraining.register(SimCLRConfig, SimCLRForPreTraining)
AutoModelForImageClassification.register(SimCLRConfig, SimCLRForImageClassification)
# One class serves both of transformers' backends: the view is computed by our own PIL + torch code.
AutoImageProcessor.register(
    SimCLRConfig, image_processor_classes={"pil": SimCLRImageProcessor, "torchvision": SimCLRImageProcessor}
)

# Saved folders also carry the code and an `auto_map`, so that they load with
# `trust_remote_code=True` where hf_simclr is not installed (e.g. from the Hub).
SimCLRConfig.register_for_auto_class()
SimCLRModel.register_for_auto_class("AutoModel")
SimCLRForPreTraining.register_for_auto_class("AutoModelForPreTraining")
SimCLRForImageClassification.register_for_auto_class("AutoModelForImageClassification")
SimCLRImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "NTXentLoss",
    "NTXentOutput",
    "SimCLRConfig",
    "SimCLRForImageClassification",
    "SimCLRForPreTraining",
    "SimCLRForPreTrainingOutput",
    "SimCLRImageProcessor",
    "SimCLRModel",
    "SimCLRPreTrainedModel",
    "contrastive_accuracy",
    "gather_with_grad",
    "nt_xent_loss",
]
