"""facelab: the course library for neural facial image compression (Napoli Spatafora et al.).

The modules, one job each: `binarizer` (Eq. 1), `model` (the autoencoder), `bitstream`, `container`,
`xz` and `codec` (the file format, bounded opening of files, compress/decompress), `limits` (the
largest image), `entropy` (a coder that beats LZMA), `weights` (checkpoints and shipped models),
`faces` (MTCNN and FaceNet), `judge` (a second recogniser, dlib's, that the face loss never saw), `losses`,
`data`, `train`, `metrics`, `baselines` (the classic codecs) and `file_overhead` (what their containers cost),
`verification`, `bdrate`, `hyperprior` (lesson 07's learned-entropy codec) and `exact` (its entropy model in
integer arithmetic, the same on every machine), `catalog` (the shipped models' names),
`evaluate`, `widgets`, `course`, `cli`.
"""

__version__ = "0.1.0"
