"""facelab's exceptions: each names the problem in one line that the CLI prints as it is."""


class FacelabError(Exception):
    """Base class: a problem with the user's input, not a bug in facelab."""


class ImageError(FacelabError):
    """An image file that cannot be read, or a pixel array facelab cannot compress."""


class BitstreamError(FacelabError):
    """A compressed file that is empty, corrupt, truncated, of a newer format or inconsistent."""


class ModelError(FacelabError):
    """A model file or name that cannot be loaded, or a model that does not match a bitstream."""


class DatasetError(FacelabError):
    """A dataset that is missing, empty or laid out differently from what its loader expects."""


class NoFaceError(FacelabError):
    """MTCNN found no face where one was required."""
