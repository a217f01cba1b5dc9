"""Base classifiers for randomized smoothing, each with its input normalisation inside.

The smoothing noise is added to the *unnormalised* input (pixels in ``[0, 1]``, or raw points
of the synthetic data sets), so that sigma and the certified radii are measured in that space.
Every model here therefore starts with a :class:`Normalize` layer instead of normalising in the
data pipeline, as in Cohen et al. (2019), ``code/datasets.py``.

- :class:`LeNet`: images ``(n, C, H, W)``, two 5x5 conv + max-pool stages and an FC layer of 500
  (LeCun et al. 1998, in the form used for MNIST in randomized-smoothing work).
- :func:`resnet20`, :func:`resnet110`, :func:`cifar_resnet`: the CIFAR ResNet of He et al. (2016),
  depth ``6n + 2``, laid out as in Cohen et al.'s ``archs/cifar_resnet.py``.
- :class:`MLP`: fully connected ReLU network, the IDRS paper's toy model (Appendix A.1).

:func:`build_model` picks input sizes and normalisation defaults from one sample's shape;
:func:`build_classifier` also takes any ``torch.nn.Module`` a user brings (an object or its
LightningCLI ``class_path`` + ``init_args``) and puts the data's :class:`Normalize` in front.

References
----------
J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified adversarial robustness via randomized
smoothing", ICML 2019 (code: ``locuslab/smoothing``, ``code/archs/cifar_resnet.py``).
K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image recognition", CVPR 2016
(Section 4.2, CIFAR-10 networks).
Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 86(11), 1998.
P. Sukenik, A. Kuvshinov, S. Guennemann, "Intriguing properties of input-dependent randomized
smoothing", ICML 2022 (Appendix A.1).
"""

from idrs_lightning.models.class_path import class_path_of, instantiate_network
from idrs_lightning.models.lenet import LeNet
from idrs_lightning.models.mlp import MLP
from idrs_lightning.models.normalize import Normalize
from idrs_lightning.models.registry import (
    MODEL_NAMES,
    NetworkSpec,
    build_classifier,
    build_model,
    default_normalization,
)
from idrs_lightning.models.resnet import BasicBlock, CifarResNet, cifar_resnet, resnet20, resnet110
from idrs_lightning.normalization import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_MEAN,
    MNIST_STD,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "MLP",
    "MNIST_MEAN",
    "MNIST_STD",
    "MODEL_NAMES",
    "BasicBlock",
    "CifarResNet",
    "LeNet",
    "NetworkSpec",
    "Normalize",
    "build_classifier",
    "build_model",
    "cifar_resnet",
    "class_path_of",
    "default_normalization",
    "instantiate_network",
    "resnet20",
    "resnet110",
]
