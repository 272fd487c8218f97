"""Check facelab's converted FaceNet against OpenCV's DNN run of the original frozen graph.

Usage: python scripts/verify_facenet_opencv.py [DATA_ROOT] [N_FACES]
Needs `pip install opencv-python-headless` (a check-only tool, not a facelab dependency); exits 0
with a note when cv2 is absent. Prints the max abs difference of the embeddings of N real LFW faces.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from facelab.facenet_convert import graph_path
from facelab.faces import crop_faces, detect_faces, face_boxes, load_facenet, standardise
from facelab.image_io import load_image
from facelab.runtime import data_root


def lfw_faces(root, count: int) -> torch.Tensor:
    """The first `count` LFW people's first photos, MTCNN-cropped to (count, 3, 160, 160) in [0, 1]."""
    folders = sorted(p for p in (root / "lfw" / "lfw-deepfunneled").iterdir() if p.is_dir())[:count]
    images = [load_image(next(iter(sorted(folder.glob("*.jpg"))))) for folder in folders]
    boxes = face_boxes(detect_faces(images))
    batch = torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image in images]).float() / 255
    return crop_faces(batch, boxes)


def main() -> int:
    """Embed real faces with both runtimes and print the largest difference."""
    try:
        import cv2
    except ImportError:
        print("skipped: OpenCV is not installed (pip install opencv-python-headless to run this check)")
        return 0
    root = data_root(sys.argv[1] if len(sys.argv) > 1 else None)
    if not (root / "lfw" / "lfw-deepfunneled").is_dir():
        print(f"no LFW under {root}: pass the data root or set FACELAB_DATA")
        return 2
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    inputs = standardise(lfw_faces(root, count))
    with torch.no_grad():
        ours = load_facenet(source="converted")(inputs).numpy()
    net = cv2.dnn.readNetFromTensorflow(str(graph_path()))
    theirs = []
    for face in inputs.numpy():  # one at a time: OpenCV 5's TF importer rejects batches at the bottleneck
        net.setInput(face[None])
        theirs.append(net.forward().reshape(-1).copy())
    diff = float(np.abs(np.stack(theirs) - ours).max())
    print(f"OpenCV {cv2.__version__} vs converted FaceNet on {count} LFW faces: max abs embedding diff {diff:.2e}")
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
