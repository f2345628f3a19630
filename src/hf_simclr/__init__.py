"""hf_simclr: SimCLR (Chen et al. 2020) as a Hugging Face model package."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
)

from .configuration_simclr import SimCLRConfig
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

# Saved folders also carry the code and an `auto_map`, so that they load with
# `trust_remote_code=True` where hf_simclr is not installed (e.g. from the Hub).
SimCLRConfig.register_for_auto_class()
SimCLRModel.register_for_auto_class("AutoModel")
SimCLRForPreTraining.register_for_auto_class("AutoModelForPreTraining")
SimCLRForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "NTXentLoss",
    "NTXentOutput",
    "SimCLRConfig",
    "SimCLRForImageClassification",
    "SimCLRForPreTraining",
    "SimCLRForPreTrainingOutput",
    "SimCLRModel",
    "SimCLRPreTrainedModel",
    "contrastive_accuracy",
    "gather_with_grad",
    "nt_xent_loss",
]
