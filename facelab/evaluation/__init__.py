"""The LFW evaluation behind `facelab evaluate`, one job per module.

`selection` (which images, identities, pairs, --limit), `store` (the resumable per-image cache),
`originals` (MTCNN box and FaceNet embedding of each original, once), `methods` (facelab models and
classic codecs: image -> sizes + reconstruction), `runner` (a method over a set), `scores` (a table row),
`report` (Markdown / CSV / JSON), `plots` (curves), `output` (the results folder), `paper` (the paper's
numbers), `context` (device, precision, cache), `timing`, `rows` (the scored rows' types), `experiment` (all of
it: `evaluate`) and `command` (`facelab evaluate`).
"""

from facelab.evaluation.experiment import EvaluationConfig, evaluate
from facelab.evaluation.paper import PAPER_TABLE1, PAPER_TABLE2

__all__ = ["PAPER_TABLE1", "PAPER_TABLE2", "EvaluationConfig", "evaluate"]
