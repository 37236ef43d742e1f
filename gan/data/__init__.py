"""Video data: built-in synthetic datasets, disk sources, and the training clip dataset."""
from gan.data.builtin import BouncingShapes, MovingDigits
from gan.data.dataset import ClipDataset, build_dataset
from gan.data.readers import DataError, FrameFolders, VideoFolder, ZipFrameFolders, open_source

__all__ = [
    "build_dataset",
    "ClipDataset",
    "DataError",
    "MovingDigits",
    "BouncingShapes",
    "VideoFolder",
    "FrameFolders",
    "ZipFrameFolders",
    "open_source",
]
