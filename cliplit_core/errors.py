"""Exceptions raised by the core. Each message names the file and the problem."""


class CLIPLITError(Exception):
    """Base class for all errors the core raises on purpose."""


class CheckpointError(CLIPLITError):
    """A weights file is missing, unreadable, unsafe or does not fit the network."""


class ImageReadError(CLIPLITError):
    """An input image cannot be read or decoded."""


class WeightsDownloadError(CLIPLITError):
    """The official weights could not be fetched or failed their checksum."""


class CLIPBackboneError(CLIPLITError):
    """A CLIP backbone cannot be built or its weights cannot be loaded."""
