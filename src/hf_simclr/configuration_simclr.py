"""Configuration of a SimCLR model: the architecture (backbone, stem, projection head) and the loss temperature.

Training-run settings (batch size, learning rate, epochs) do not live here: they belong to the
pretraining script's arguments, saved next to the model as `training_args.json`.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

# Keys that `hf_simclr.timm_export` adds to a model folder's config.json so that
# `timm.create_model("hf-hub:<repo>")` finds the timm copy of the encoder. They describe that copy, not
# the architecture: a config loaded from such a folder drops them, so that no other folder it is saved
# into (a fine-tuned model, a snapshot) claims a timm copy it does not hold.
TIMM_EXPORT_KEYS = ("architecture", "num_features", "model_args", "pretrained_cfg")


class SimCLRConfig(PretrainedConfig):
    """Configuration for [`SimCLRModel`], [`SimCLRForPreTraining`] and [`SimCLRForImageClassification`].

    Args:
        backbone (`str`, *optional*, defaults to `"resnet18"`):
            Name of a timm CNN that gives pooled features with `num_classes=0` (`resnet18`, `resnet34`,
            `resnet50`, ...). The backbone is always built from scratch (`pretrained=False`).
        cifar_stem (`bool`, *optional*, defaults to `False`):
            Replace the ResNet stem by a 3x3 stride-1 convolution without max-pool, as the paper does
            for 32x32 CIFAR images (Chen et al. 2020, Appendix B.9). Needs a backbone with a single
            `conv1` convolution and a `maxpool` (timm's plain ResNets).
        backbone_kwargs (`dict`, *optional*):
            Extra keyword arguments for `timm.create_model` (e.g. `{"drop_path_rate": 0.1}`).
        projection_layers (`int`, *optional*, defaults to 2):
            Layers of the projection head g(.): 0 = none (z = h), 1 = linear, 2 or more = MLP with ReLU
            (the paper's choice; Section 4.2 finds a nonlinear head best).
        projection_hidden_dim (`int`, *optional*):
            Width of the MLP's hidden layers; defaults to the backbone's feature width (512 for
            resnet18, 2048 for resnet50).
        projection_dim (`int`, *optional*, defaults to 128):
            Width of z, the output of the projection head (ignored when `projection_layers=0`).
        projection_batch_norm (`bool`, *optional*, defaults to `True`):
            BatchNorm after each hidden linear layer of the MLP head.
        classifier_head_layers (`int`, *optional*, defaults to 0):
            Layers of the projection head that the classifier built from this model keeps before its linear
            classifier: 0 classifies h (SimCLR v1), 1 classifies the output of the head's first layer, which
            SimCLR v2 fine-tunes from with a 3-layer head (Chen et al. 2020b, Section 2.2). At most
            `projection_layers`. Pretraining ignores it; it says how the model is fine-tuned.
        loss_temperature (`float`, *optional*, defaults to 0.5):
            Temperature tau of the NT-Xent loss (Section 5.1; 0.5 is the paper's choice for CIFAR-10).
            Not called `temperature`: transformers reserves that name for generation.
        image_size (`int`, *optional*, defaults to 224):
            Side of the images the model was trained on; written into the saved image processor.
    """

    model_type = "simclr"

    def __init__(
        self,
        backbone: str = "resnet18",
        cifar_stem: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
        projection_layers: int = 2,
        projection_hidden_dim: int | None = None,
        projection_dim: int = 128,
        projection_batch_norm: bool = True,
        classifier_head_layers: int = 0,
        loss_temperature: float = 0.5,
        image_size: int = 224,
        **kwargs: Any,
    ) -> None:
        self.backbone = backbone
        self.cifar_stem = cifar_stem
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.projection_layers = projection_layers
        self.projection_hidden_dim = projection_hidden_dim
        self.projection_dim = projection_dim
        self.projection_batch_norm = projection_batch_norm
        self.classifier_head_layers = classifier_head_layers
        self.loss_temperature = loss_temperature
        self.image_size = image_size
        self._validate()
        for key in TIMM_EXPORT_KEYS:
            kwargs.pop(key, None)
        super().__init__(**kwargs)

    def _validate(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(f"backbone={self.backbone!r} must be a timm model name such as 'resnet18'.")
        if not isinstance(self.projection_layers, int) or self.projection_layers < 0:
            raise ValueError(
                f"projection_layers={self.projection_layers!r} must be an integer >= 0 "
                "(0 = no head, 1 = linear, 2+ = MLP)."
            )
        if self.projection_hidden_dim is not None and self.projection_hidden_dim < 1:
            raise ValueError(
                f"projection_hidden_dim={self.projection_hidden_dim} must be a positive width, or None "
                "for the backbone's feature width."
            )
        if not isinstance(self.projection_dim, int) or self.projection_dim < 1:
            raise ValueError(f"projection_dim={self.projection_dim!r} must be a positive integer.")
        if not isinstance(self.classifier_head_layers, int) or not (
            0 <= self.classifier_head_layers <= self.projection_layers
        ):
            raise ValueError(
                f"classifier_head_layers={self.classifier_head_layers!r} must be an integer in [0, "
                f"projection_layers={self.projection_layers}]: the classifier keeps that many layers of the "
                f"projection head (0: it classifies h)."
            )
        if not isinstance(self.loss_temperature, (int, float)) or not self.loss_temperature > 0:
            raise ValueError(
                f"loss_temperature={self.loss_temperature!r} must be > 0 (the paper uses 0.1 to 1.0)."
            )
        if not isinstance(self.image_size, int) or self.image_size < 8:
            raise ValueError(f"image_size={self.image_size!r} must be an integer >= 8 (pixels).")
        if "num_classes" in self.backbone_kwargs or "pretrained" in self.backbone_kwargs:
            raise ValueError(
                "backbone_kwargs may not set 'num_classes' or 'pretrained': the backbone always gives "
                "pooled features and is built from scratch."
            )


# save_pretrained writes this file and an `auto_map` into every folder, for `trust_remote_code` loading.
SimCLRConfig.register_for_auto_class()
