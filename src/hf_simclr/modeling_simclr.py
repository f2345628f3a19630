"""SimCLR models (Chen et al. 2020): a timm CNN encoder f(.), a projection head g(.), NT-Xent.

- [`SimCLRModel`]: pixels -> feature map and h = f(x), the representation used downstream.
- [`SimCLRForPreTraining`]: two augmented views -> NT-Xent loss, h, z = g(h), contrastive accuracy.
- [`SimCLRForImageClassification`]: encoder (+ the first layers of the head) + linear classifier, for
  fine-tuning or probing.

This file imports only torch, timm, transformers and its sibling files: it is copied next to saved
models so that `AutoModel.from_pretrained(dir, trust_remote_code=True)` works without hf_simclr.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.utils import ModelOutput

from .configuration_simclr import SimCLRConfig
from .loss import contrastive_accuracy, nt_xent_loss


@dataclass
class SimCLRForPreTrainingOutput(ModelOutput):
    """Output of [`SimCLRForPreTraining`].

    Attributes:
        loss (`torch.FloatTensor`, scalar): NT-Xent loss over this process's two views.
        h (`torch.FloatTensor` of shape `(2B, hidden_size)`): representations f(x), first views then second views.
        z (`torch.FloatTensor` of shape `(2B, projection_dim)`): projections g(h), same order.
        contrastive_top1 (`torch.FloatTensor`, scalar): fraction of views whose positive ranks first
            among the 2N - 1 candidates (N images in the global batch).
        contrastive_top5 (`torch.FloatTensor`, scalar): the same for the top 5.
    """

    loss: torch.FloatTensor | None = None
    h: torch.FloatTensor | None = None
    z: torch.FloatTensor | None = None
    contrastive_top1: torch.FloatTensor | None = None
    contrastive_top5: torch.FloatTensor | None = None


def create_backbone(config: SimCLRConfig) -> nn.Module:
    """Build the timm encoder f(.) without classifier, with the CIFAR stem when asked for.

    Raises:
        ValueError: if timm has no model of that name, or the CIFAR stem does not fit it.
    """
    if not timm.is_model(config.backbone):
        raise ValueError(
            f"backbone={config.backbone!r} is not a timm model; pick one of timm.list_models('resnet*'), "
            "e.g. 'resnet18' or 'resnet50'."
        )
    backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0, **config.backbone_kwargs)
    if config.cifar_stem:
        conv1 = getattr(backbone, "conv1", None)
        if not isinstance(conv1, nn.Conv2d) or not hasattr(backbone, "maxpool"):
            raise ValueError(
                f"cifar_stem=True needs a backbone with a single `conv1` convolution and a `maxpool` "
                f"(timm's plain ResNets); {config.backbone!r} has none. Use e.g. backbone='resnet18', or cifar_stem=False "
                f"with a backbone that takes images of image_size={config.image_size}."
            )
        # Paper, Appendix B.9: 3x3 stride-1 first conv, no max-pool, for 32x32 inputs.
        backbone.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")  # timm's choice
        backbone.maxpool = nn.Identity()
    return backbone


class ProjectionHead(nn.Sequential):
    """The projection head g(.) (paper, Section 4.2): identity, linear, or MLP with ReLU; or its first layers.

    Layer i < L of an L-layer head is Linear (+ BatchNorm) + ReLU, the last one Linear. The first `layers` of
    them keep their module indices, so that their weights load by name from a full head's (the classifier
    that fine-tunes from a layer of the head, SimCLR v2, Section 2.2).

    Args:
        in_dim (`int`): width of h.
        config (`SimCLRConfig`): gives `projection_layers`, `projection_hidden_dim`, `projection_dim`
            and `projection_batch_norm`.
        layers (`int`, *optional*): build only the first `layers` layers (at most `projection_layers`);
            defaults to the whole head.
    """

    def __init__(self, in_dim: int, config: SimCLRConfig, layers: int | None = None) -> None:
        total = config.projection_layers
        layers = total if layers is None else layers
        if not 0 <= layers <= total:
            raise ValueError(f"layers={layers} must be in [0, projection_layers={total}].")
        modules: list[nn.Module] = []
        hidden = config.projection_hidden_dim or in_dim
        width = in_dim
        for _ in range(min(layers, total - 1)):
            modules.append(nn.Linear(width, hidden, bias=not config.projection_batch_norm))
            if config.projection_batch_norm:
                modules.append(nn.BatchNorm1d(hidden))
            modules.append(nn.ReLU(inplace=True))
            width = hidden
        if layers == total >= 1:
            modules.append(nn.Linear(width, config.projection_dim))
            width = config.projection_dim
        super().__init__(*modules)
        self.out_dim = width


class SimCLRPreTrainedModel(PreTrainedModel):
    """Base class: config, weight init and the loading prefix shared by the SimCLR models."""

    config_class = SimCLRConfig
    base_model_prefix = "simclr"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False

    # Written into every saved config, so that a folder saved from any of the three models loads
    # through each Auto class with `trust_remote_code=True` where hf_simclr is not installed.
    _auto_map = {
        "AutoConfig": "configuration_simclr.SimCLRConfig",
        "AutoModel": "modeling_simclr.SimCLRModel",
        "AutoModelForPreTraining": "modeling_simclr.SimCLRForPreTraining",
        "AutoModelForImageClassification": "modeling_simclr.SimCLRForImageClassification",
    }

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        self.config.auto_map = dict(self._auto_map)
        super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        # Only the heads are ours. The timm backbone initialised itself (e.g. zero-init of the last BN
        # of each residual block), and transformers' default N(0, 0.02) would destroy that.
        if isinstance(module, ProjectionHead) or module is getattr(self, "classifier", None):
            for layer in module.modules():
                if isinstance(layer, (nn.Linear, nn.BatchNorm1d)):
                    layer.reset_parameters()


class SimCLRModel(SimCLRPreTrainedModel):
    """The SimCLR encoder f(.): a timm CNN whose pooled output is the representation h.

    Args:
        config (`SimCLRConfig`): model configuration.
    """

    # Loading the encoder from a pretraining (or classification) folder is the intended use: the heads'
    # weights there are expected extras, not a LOAD REPORT. The models holding an encoder inherit this
    # (transformers' post_init gathers it from submodules); a missing weight is still reported.
    _keys_to_ignore_on_load_unexpected = [r"^projection_head\.", r"^classifier\."]

    def __init__(self, config: SimCLRConfig) -> None:
        super().__init__(config)
        self.backbone = create_backbone(config)
        self.post_init()

    @property
    def hidden_size(self) -> int:
        """Width of h (`num_features` of the timm backbone)."""
        return self.backbone.num_features

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """Encode images.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, 3, H, W)`): normalised images.

        Returns:
            [`BaseModelOutputWithPooling`] with `last_hidden_state` `(B, hidden_size, H', W')`, the
            last feature map, and `pooler_output` `(B, hidden_size)`, h.
        """
        if pixel_values.dim() != 4:
            raise ValueError(
                f"pixel_values must have shape (batch, channels, height, width); got {tuple(pixel_values.shape)}."
            )
        features = self.backbone.forward_features(pixel_values)
        h = self.backbone.forward_head(features, pre_logits=True)
        return BaseModelOutputWithPooling(last_hidden_state=features, pooler_output=h)


def split_views(pixel_values: torch.Tensor) -> torch.Tensor:
    """Lay out two views per image as one batch `(2B, 3, H, W)`: all first views, then all second views.

    Args:
        pixel_values (`torch.Tensor`): `(B, 2, 3, H, W)` (views stacked per image) or `(2B, 3, H, W)`
            (already in the concatenated layout).

    Raises:
        ValueError: for any other number of views or an odd concatenated batch.
    """
    if pixel_values.dim() == 5:
        if pixel_values.shape[1] != 2:
            raise ValueError(
                f"SimCLR needs exactly 2 views per image; got pixel_values of shape {tuple(pixel_values.shape)} "
                f"with {pixel_values.shape[1]} views. Use a two-view transform."
            )
        return pixel_values.transpose(0, 1).flatten(0, 1)
    if pixel_values.dim() == 4:
        if pixel_values.shape[0] % 2:
            raise ValueError(
                f"A concatenated two-view batch must have an even size (first views, then second views); "
                f"got {pixel_values.shape[0]}."
            )
        return pixel_values
    raise ValueError(
        f"pixel_values must be (B, 2, 3, H, W) or (2B, 3, H, W); got shape {tuple(pixel_values.shape)}."
    )


class SimCLRForPreTraining(SimCLRPreTrainedModel):
    """Encoder f(.) + projection head g(.) trained with NT-Xent on two views of each image.

    Args:
        config (`SimCLRConfig`): model configuration.
    """

    def __init__(self, config: SimCLRConfig) -> None:
        super().__init__(config)
        self.simclr = SimCLRModel(config)
        self.projection_head = ProjectionHead(self.simclr.hidden_size, config)
        self.post_init()

    def forward(
        self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs
    ) -> SimCLRForPreTrainingOutput:
        """Contrast two views of every image.

        Args:
            pixel_values (`torch.FloatTensor`): `(B, 2, 3, H, W)` or `(2B, 3, H, W)` (see [`split_views`]).
            return_loss (`bool`, defaults to `True`): False gives h and z only (no loss, no accuracy), as
                the cached-gradient step's chunks need (`hf_simclr.cached_gradients`): the loss is then
                computed over the whole batch's z.

        Returns:
            [`SimCLRForPreTrainingOutput`]. Under several processes (torch.distributed initialised),
            negatives come from all processes.
        """
        views = split_views(pixel_values)
        h = self.simclr(views).pooler_output
        z = self.projection_head(h)
        if not return_loss:
            return SimCLRForPreTrainingOutput(h=h, z=z)
        z_a, z_b = z.chunk(2)
        result = nt_xent_loss(z_a, z_b, self.config.loss_temperature)
        return SimCLRForPreTrainingOutput(
            loss=result.loss,
            h=h,
            z=z,
            contrastive_top1=contrastive_accuracy(result.logits, result.labels, k=1),
            contrastive_top5=contrastive_accuracy(result.logits, result.labels, k=5),
        )


class SimCLRForImageClassification(SimCLRPreTrainedModel):
    """Encoder f(.), the first `classifier_head_layers` layers of the projection head, and a linear classifier.

    With `classifier_head_layers=0` (the default) the classifier reads h, as SimCLR v1 fine-tunes and probes;
    with k >= 1 it reads the output of the head's k-th layer, whose weights load from a pretraining folder's
    head (`projection_head.*`): SimCLR v2 fine-tunes from the first layer of a 3-layer head (Chen et al.
    2020b, "Big Self-Supervised Models are Strong Semi-Supervised Learners", Section 2.2).

    Args:
        config (`SimCLRConfig`): model configuration; `num_labels` sets the classifier's width,
            `classifier_head_layers` the head layers kept.
    """

    def __init__(self, config: SimCLRConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.simclr = SimCLRModel(config)
        width = self.simclr.hidden_size
        if config.classifier_head_layers:
            self.projection_head = ProjectionHead(width, config, layers=config.classifier_head_layers)
            width = self.projection_head.out_dim
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
    ) -> ImageClassifierOutput:
        """Classify images.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, 3, H, W)`): normalised images.
            labels (`torch.LongTensor` of shape `(B,)`, *optional*): class indices; gives a cross-entropy loss.

        Returns:
            [`ImageClassifierOutput`] with `loss` (when labels are given) and `logits` `(B, num_labels)`.
        """
        features = self.simclr(pixel_values).pooler_output
        if self.config.classifier_head_layers:
            features = self.projection_head(features)
        logits = self.classifier(features)
        loss = None
        if labels is not None:
            if labels.min() < 0 or labels.max() >= self.num_labels:
                raise ValueError(
                    f"labels must lie in [0, {self.num_labels}); got {labels.min()}..{labels.max()}."
                )
            loss = F.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


# save_pretrained writes the code files and an `auto_map` into every folder, for `trust_remote_code` loading.
SimCLRModel.register_for_auto_class("AutoModel")
SimCLRForPreTraining.register_for_auto_class("AutoModelForPreTraining")
SimCLRForImageClassification.register_for_auto_class("AutoModelForImageClassification")
