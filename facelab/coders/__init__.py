"""One module per coder of facelab files, named in `facelab.bitstream.CODERS` (its `module`).

Each provides `write_file(model, image, header) -> bytes`, the whole file of an (H, W, 3) uint8 image, and
`read_file(model, header, payload) -> image`, the image back from the payload that follows the header;
`facelab.codec` checks the model and the sizes and hands over. Adding a coder is its `Coder` entry and its module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from facelab.bitstream import CODERS


def coder_module(name: str) -> ModuleType:
    """The module that writes and reads files of the coder `name`."""
    return importlib.import_module(CODERS[name].module)
