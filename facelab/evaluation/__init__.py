"""The LFW evaluation behind `facelab evaluate`, one job per module.

`selection` (which images, identities, pairs, --limit), `store` (the resumable per-image cache),
`originals` (MTCNN box and FaceNet embedding of each original, once), `methods` (facelab models and
classic codecs: image -> sizes + reconstruction), `runner` (a method over a set), `scores` (a table row),
`report` (Markdown / CSV / JSON), `plots` (curves), `output` (the results folder), `paper` (the paper's
numbers), `context` (device, precision, cache), `timing`, and `experiment` (all of it).
"""
