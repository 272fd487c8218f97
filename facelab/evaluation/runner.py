"""Run one method over a set of images: real file sizes, PSNR, MS-SSIM, FaceNet embedding, MTCNN detection and the
judge's descriptor.

The reconstruction is embedded through the ORIGINAL's face box (the paper's crop path) and described by the judge
aligned by the ORIGINAL's landmarks; MTCNN is run on it afresh only to count the faces it no longer finds. Rows are
cached per method and image, so adding a method, or raising --limit, redoes nothing already done; the judge's rows
are cached apart, so a cache from before the judge is filled with them and keeps the rest, and so are a facelab
model's file sizes, keyed by file format too, so a new format re-encodes (no decoding, no face networks) and keeps
the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab import faces, judge
from facelab.data.files import read_rgb
from facelab.evaluation.chunks import fill_missing, fill_parts
from facelab.evaluation.context import RunContext
from facelab.evaluation.methods import FacelabMethod, Method, MethodOutput
from facelab.evaluation.originals import Originals, embed_crops, embedder_settings, judge_settings, prepare_mtcnn
from facelab.evaluation.selection import EvalImage
from facelab.evaluation.store import ShardStore, store_folder
from facelab.evaluation.workers import WorkerPool
from facelab.metrics import cosine_similarity, ms_ssim_many, psnr

FACENET = "facenet"
JUDGE = "judge"
SIZES = "sizes"
"""The cached parts of a method's rows: everything FaceNet's scores need (a classic codec's file sizes with them),
the judge's descriptors, and a facelab model's file sizes under its coder."""


@dataclass
class MethodResult:
    """Per-image results of one method: bytes per coder, quality used, PSNR, MS-SSIM, embeddings, cosine, detection,
    and the judge's descriptors and similarity to the original's (`judge.similarity`)."""

    name: str
    family: str
    sizes: dict[str, np.ndarray]
    quality: np.ndarray
    psnr: np.ndarray
    ms_ssim: np.ndarray
    embeddings: np.ndarray
    cosine: np.ndarray
    detected: np.ndarray
    judge_embeddings: np.ndarray
    judge_similarity: np.ndarray

    def take(self, indices: list[int] | np.ndarray) -> MethodResult:
        """The rows at `indices` (a subset of the images)."""
        index = np.asarray(indices, dtype=np.int64)
        return MethodResult(self.name, self.family, {coder: size[index] for coder, size in self.sizes.items()},
                            self.quality[index], self.psnr[index], self.ms_ssim[index], self.embeddings[index],
                            self.cosine[index], self.detected[index], self.judge_embeddings[index],
                            self.judge_similarity[index])


def original_result(originals: Originals) -> MethodResult:
    """The originals as a 'method': their file sizes, PSNR inf, MS-SSIM 1, cosine 1, MTCNN's own detections, judge 1."""
    count = len(originals.detected)
    return MethodResult("original", "original", {"file": originals.file_bytes}, np.full(count, np.nan),
                        np.full(count, np.inf), np.ones(count), originals.embeddings,
                        cosine_similarity(originals.embeddings, originals.embeddings), originals.detected,
                        originals.judge_embeddings,
                        judge.similarity(originals.judge_embeddings, originals.judge_embeddings))


def measure_chunk(method: Method, images: list[EvalImage], boxes: np.ndarray, landmarks: np.ndarray,
                  parts: tuple[str, ...], context: RunContext) -> dict[str, dict[str, np.ndarray]]:
    """The cached columns of one chunk of images, for each of `parts`: FACENET (quality, PSNR, MS-SSIM, FaceNet
    embedding, MTCNN detection, and a classic codec's bytes), JUDGE (the judge's descriptor, aligned by the
    originals' `landmarks`) and SIZES (a facelab model's bytes; alone, the images are only encoded)."""
    if parts == (SIZES,):
        return {SIZES: size_chunk(method, method.coders[0], images, context)}
    with context.timer("load"):
        arrays = [read_rgb(image.path) for image in images]
    with context.timer(f"codec {method.family}"):
        coded = [method.code(array, image.key) for array, image in zip(arrays, images)]
    reconstructions = [item.reconstruction for item in coded]
    columns = {}
    if FACENET in parts:
        columns[FACENET] = facenet_columns(method, coded, arrays, boxes, context)
    if JUDGE in parts:
        with context.timer("judge reconstructions"):
            columns[JUDGE] = {"descriptor": judge.load_judge().descriptors(reconstructions, landmarks)}
    if SIZES in parts:
        columns[SIZES] = {"bytes": np.asarray([item.sizes[method.coders[0]] for item in coded], dtype=np.int64)}
    return columns


def facenet_columns(method: Method, coded: list[MethodOutput], arrays: list[np.ndarray], boxes: np.ndarray,
                    context: RunContext) -> dict[str, np.ndarray]:
    """The FaceNet part's columns of a coded chunk: bytes per coder, quality, PSNR, MS-SSIM, embedding, detection."""
    device, timer, batch_size = context.device, context.timer, context.batch_size
    reconstructions = [item.reconstruction for item in coded]
    with timer("psnr + ms-ssim"):
        psnrs = np.asarray([psnr(a, r) for a, r in zip(arrays, reconstructions)])
        ms_ssims = ms_ssim_many(arrays, reconstructions)
    with timer("facenet reconstructions"):
        embeddings = embed_crops(reconstructions, boxes, context)
    with timer("mtcnn reconstructions"):
        detections = faces.detect_faces(reconstructions, device=device, batch_size=batch_size)
    columns = ({} if method.sizes_key(method.coders[0]) is not None else
               {f"bytes_{coder}": np.asarray([item.sizes[coder] for item in coded], dtype=np.int64)
                for coder in method.coders})
    return {**columns, "quality": np.asarray([item.quality for item in coded], dtype=np.float64), "psnr": psnrs,
            "ms_ssim": ms_ssims, "embedding": embeddings, "detected": np.asarray([d is not None for d in detections])}


def evaluate_method(method: Method, images: list[EvalImage], originals: Originals, context: RunContext,
                    pool: WorkerPool | None = None) -> MethodResult:
    """Per-image results of `method` on `images` (whose originals' data is `originals`), cached and resumable;
    with a `pool` (workers.start_workers) its chunks are measured by worker processes side by side."""
    stores = {FACENET: ShardStore(store_folder(context.cache, "methods",
                                               {**method.cache_key, **embedder_settings(context)})),
              JUDGE: ShardStore(store_folder(context.cache, "judge", {**method.cache_key, **judge_settings(context)}))}
    if method.sizes_key(method.coders[0]) is not None:
        stores[SIZES] = sizes_store(method, method.coders[0], context)
    prepare_mtcnn(context)
    keys = [image.key for image in images]
    def job(chunk: list[int], parts: tuple[str, ...]) -> tuple:
        return (measure_chunk, method, [images[i] for i in chunk], originals.boxes[chunk],
                originals.judge_landmarks[chunk], parts, context)

    fill_parts(stores, keys, job, method.name, context, pool)
    columns = stores[FACENET].gather(keys, ("quality", "psnr", "ms_ssim", "embedding", "detected",
                                            *([] if SIZES in stores else [f"bytes_{c}" for c in method.coders])))
    sizes = ({method.coders[0]: stores[SIZES].gather(keys)["bytes"]} if SIZES in stores else
             {coder: columns[f"bytes_{coder}"] for coder in method.coders})
    embeddings = columns["embedding"].astype(np.float32)
    descriptors = stores[JUDGE].gather(keys)["descriptor"].astype(np.float32)
    return MethodResult(method.name, method.family, {coder: size.astype(np.int64) for coder, size in sizes.items()},
                        columns["quality"], columns["psnr"], columns["ms_ssim"], embeddings,
                        cosine_similarity(originals.embeddings, embeddings), columns["detected"].astype(bool),
                        descriptors, judge.similarity(originals.judge_embeddings, descriptors))


def sizes_store(method: Method, coder: str, context: RunContext) -> ShardStore:
    """The cache of a method's file sizes under `coder` (a facelab model's: in the coder's current file format)."""
    return ShardStore(store_folder(context.cache, "sizes", method.sizes_key(coder)))


def size_chunk(method: FacelabMethod, coder: str, images: list[EvalImage],
               context: RunContext) -> dict[str, np.ndarray]:
    """Bytes of each image of one chunk under `coder`, as the cached column 'bytes'."""
    with context.timer("load"):
        arrays = [read_rgb(image.path) for image in images]
    with context.timer(f"coder {coder}"):
        return {"bytes": np.asarray([method.size(array, coder) for array in arrays], dtype=np.int64)}


def coded_sizes(method: FacelabMethod, coder: str, images: list[EvalImage], context: RunContext,
                pool: WorkerPool | None = None) -> np.ndarray:
    """Bytes of each image under another entropy coder (e.g. 'context'); cached like every other result."""
    store = sizes_store(method, coder, context)
    keys = [image.key for image in images]
    fill_missing(store, keys, lambda chunk: (size_chunk, method, coder, [images[i] for i in chunk], context),
                 f"{method.name} ({coder})", context, pool)
    return store.gather(keys)["bytes"].astype(np.int64)
