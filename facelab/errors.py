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


class OutputError(FacelabError):
    """An output that cannot be written: a read-only folder, a full disk, or a path through a regular file."""


class FacelabWarning(UserWarning):
    """Something the user may not expect but that is not an error, such as an animation cut to its first frame."""


def job_failure(exc: BaseException) -> str | None:
    """The one line for a failure that ends one file's job, or None for anything else (a bug keeps its traceback).

    facelab's own errors say themselves; an operating-system error gives its reason and file; running out of
    memory (Python's MemoryError, or PyTorch's allocator errors) says so.
    """
    if isinstance(exc, FacelabError):
        return str(exc)
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and _is_torch_out_of_memory(exc)):
        return f"out of memory ({str(exc).splitlines()[0]})" if str(exc) else "out of memory"
    if isinstance(exc, OSError):
        if exc.strerror is None:
            return str(exc)
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return None


def _is_torch_out_of_memory(exc: RuntimeError) -> bool:
    """Whether PyTorch raised `exc` because an allocation failed (its CPU allocator or a CUDA out-of-memory)."""
    return type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(exc)
