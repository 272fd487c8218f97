"""Per-original work done once and cached: the MTCNN face box, the FaceNet embedding of its crop, and the judge's
landmarks and descriptor (`facelab.judge`).

The paper's crop path: MTCNN's most probable box on the ORIGINAL crops both the original and every
reconstruction of it. Where MTCNN finds no face in an original, FALLBACK_BOX (the median LFW box, as
fractions of the image; an aligned LFW view brings its own, `RunContext.fallback_box`) is used instead, so
every image has an embedding; those images are counted. The judge's 5 landmarks are found in that same box, once,
on the original, and align every reconstruction of it. The judge's rows are cached apart from FaceNet's, so a
cache from before the judge keeps its FaceNet rows and gains the judge's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facelab import faces, judge
from facelab.data.files import read_rgb
from facelab.evaluation.chunks import fill_missing
from facelab.evaluation.context import RunContext
from facelab.evaluation.selection import EvalImage
from facelab.evaluation.store import ShardStore, store_folder
from facelab.evaluation.workers import WorkerPool
from facelab.image_io import to_tensor

FALLBACK_BOX = (0.311, 0.259, 0.683, 0.757)
"""x1, y1, x2, y2 as fractions of width / height: the median MTCNN box of 400 seeded LFW deep-funneled originals."""


@dataclass
class Originals:
    """Per-image data of the originals: detected face or not, the box used, its probability, FaceNet embedding, size,
    and the judge's landmarks (N, 5, 2) and descriptors (N, 128)."""

    detected: np.ndarray
    boxes: np.ndarray
    probs: np.ndarray
    embeddings: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    file_bytes: np.ndarray
    judge_landmarks: np.ndarray
    judge_embeddings: np.ndarray

    def take(self, indices: list[int] | np.ndarray) -> Originals:
        """The rows at `indices`."""
        index = np.asarray(indices, dtype=np.int64)
        return Originals(*(getattr(self, name)[index] for name in self.__dataclass_fields__))


def fallback_fractions(context: RunContext) -> tuple[float, float, float, float]:
    """The fallback box of this run, as fractions of the image: the context's, else FALLBACK_BOX."""
    return context.fallback_box or FALLBACK_BOX


def fallback_box(height: int, width: int, fractions: tuple[float, float, float, float] = FALLBACK_BOX) -> np.ndarray:
    """The fallback box `fractions` in pixels of a height x width image."""
    x1, y1, x2, y2 = fractions
    return np.asarray([x1 * width, y1 * height, x2 * width, y2 * height], dtype=np.float32)


def boxes_or_fallback(detections: list[faces.Detection | None], shapes: list[tuple[int, ...]],
                      fractions: tuple[float, float, float, float] = FALLBACK_BOX) -> np.ndarray:
    """(N, 4) boxes: each detection's, else the fallback box `fractions` for that image's size."""
    return np.stack([detection.box if detection is not None else fallback_box(*shape[:2], fractions)
                     for detection, shape in zip(detections, shapes)]).astype(np.float32)


def embed_crops(images: list[np.ndarray], boxes: np.ndarray, context: RunContext) -> np.ndarray:
    """(N, 512) FaceNet embeddings of each image's box, `batch_size` crops at a time, in the context's precision."""
    device, batch_size = context.device, context.batch_size
    facenet = faces.load_facenet(device)
    out = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=context.precision == "bf16"):
        for start in range(0, len(images), batch_size):
            crops = [faces.crop_faces(to_tensor(image), torch.from_numpy(box[None]))
                     for image, box in zip(images[start:start + batch_size], boxes[start:start + batch_size])]
            out.append(faces.embed(facenet, torch.cat(crops).to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 512), np.float32)


def prepare_mtcnn(context: RunContext) -> None:
    """Switch the shared MTCNN to channels-last memory: about 30% faster on CPU (its max-pooling), same boxes."""
    faces.load_mtcnn(context.device).to(memory_format=torch.channels_last)


def embedder_settings(context: RunContext) -> dict:
    """What cached embeddings depend on: FaceNet's weights and precision, crop, standardisation, MTCNN's face size."""
    return {"facenet": faces.load_facenet(context.device).weights_name, "precision": context.precision,
            "standardisation": faces.STANDARDISATION, "margin": faces.CROP_MARGIN, "min_face": faces.MIN_FACE_SIZE,
            "fallback": fallback_fractions(context)}


def judge_settings(context: RunContext) -> dict:
    """What the judge's cached rows depend on: the judge's models and the boxes its landmarks are found in."""
    return {"judge": judge.JUDGE_NAME, "min_face": faces.MIN_FACE_SIZE, "fallback": fallback_fractions(context)}


def judge_original_chunk(images: list[EvalImage], boxes: np.ndarray, context: RunContext) -> dict[str, np.ndarray]:
    """The judge's cached columns of one chunk of originals: its landmarks in each original's box, its descriptor."""
    with context.timer("load"):
        arrays = [read_rgb(image.path) for image in images]
    with context.timer("judge originals"):
        model = judge.load_judge()
        landmarks = model.landmarks(arrays, boxes)
        return {"landmarks": landmarks, "descriptor": model.descriptors(arrays, landmarks)}


def original_chunk(images: list[EvalImage], context: RunContext) -> dict[str, np.ndarray]:
    """The cached columns of one chunk of originals: MTCNN's box (or the fallback's), its probability, the
    FaceNet embedding of its crop, the image size."""
    with context.timer("load"):
        arrays = [read_rgb(image.path) for image in images]
    with context.timer("mtcnn originals"):
        detections = faces.detect_faces(arrays, device=context.device, batch_size=context.batch_size)
    boxes = boxes_or_fallback(detections, [array.shape for array in arrays], fallback_fractions(context))
    with context.timer("facenet originals"):
        embeddings = embed_crops(arrays, boxes, context)
    return {"detected": np.asarray([d is not None for d in detections]), "box": boxes,
            "prob": np.asarray([d.prob if d is not None else 0.0 for d in detections], dtype=np.float32),
            "embedding": embeddings, "height": np.asarray([a.shape[0] for a in arrays]),
            "width": np.asarray([a.shape[1] for a in arrays])}


def compute_originals(images: list[EvalImage], context: RunContext,
                      pool: WorkerPool | None = None) -> Originals:
    """Detect and embed every original, reading cached rows and computing (and caching) only the missing ones;
    with a `pool` (workers.start_workers) its chunks are measured by worker processes side by side."""
    judge.load_judge()  # before any work (a missing dlib fails at once) and before worker processes fork
    store = ShardStore(store_folder(context.cache, "originals", embedder_settings(context)))
    prepare_mtcnn(context)
    keys = [image.key for image in images]
    fill_missing(store, keys, lambda chunk: (original_chunk, [images[i] for i in chunk], context),
                 "originals (MTCNN + FaceNet)", context, pool)
    columns = store.gather(keys)
    judged = ShardStore(store_folder(context.cache, "judge-originals", judge_settings(context)))
    fill_missing(judged, keys, lambda chunk: (judge_original_chunk, [images[i] for i in chunk], columns["box"][chunk],
                                              context), "originals (judge)", context, pool)
    judge_columns = judged.gather(keys)
    return Originals(columns["detected"].astype(bool), columns["box"], columns["prob"], columns["embedding"],
                     columns["height"].astype(np.int64), columns["width"].astype(np.int64),
                     np.asarray([image.file_bytes for image in images], dtype=np.int64),
                     judge_columns["landmarks"].astype(np.float32), judge_columns["descriptor"].astype(np.float32))
