"""Video data: built-in synthetic datasets, disk sources, and the training clip dataset."""
from gan.data.builtin import BouncingShapes, MovingDigits, MovingDots
from gan.data.dataset import ClipDataset, build_dataset, infer_settings, open_disk_source
from gan.data.prepared import PreparedDataset, cached_prepare, open_prepared, prepare
from gan.data.readers import DataError, FrameFolders, VideoFolder, ZipFrameFolders, open_source

__all__ = [
    "build_dataset",
    "infer_settings",
    "open_disk_source",
    "PreparedDataset",
    "cached_prepare",
    "open_prepared",
    "prepare",
    "ClipDataset",
    "DataError",
    "MovingDigits",
    "BouncingShapes",
    "MovingDots",
    "VideoFolder",
    "FrameFolders",
    "ZipFrameFolders",
    "open_source",
]
