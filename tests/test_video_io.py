"""Video reading/writing: conversions, mp4/gif/png writers, probing, grids, error handling."""
import io
import os
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from gan.video_io import (Mp4Writer, RawWriter, VideoReadError, make_grid, probe_video, read_video,
                          resize_square, to_uint8, write_gif, write_mp4, write_png_frames, write_video)


def smooth_video(t=8, h=32, w=32, seed=0):
    """A smooth, moving colour pattern (codec friendly) -> uint8 [T, H, W, 3]; frame k has mean ~ 8k+..."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for k in range(t):
        r = 128 + 100 * np.sin((xx + 2 * k) / 12.0)
        g = 128 + 100 * np.cos((yy - k) / 10.0)
        b = np.full_like(xx, 20 + 25 * k)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def ffmpeg_info(path) -> str:
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True)
    return proc.stderr


def test_to_uint8_layout_range_and_grey():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0]).view(1, 1, 1, 5).expand(2, 3, 1, 5)  # [N, C, H, W]
    y = to_uint8(x)
    assert y.shape == (2, 1, 5, 3) and y.dtype == np.uint8
    assert y[0, 0, :, 0].tolist() == [0, 128, 255, 255, 0]
    grey = to_uint8(torch.zeros(4, 1, 6, 7))                  # C=1 is repeated to RGB
    assert grey.shape == (4, 6, 7, 3) and (grey == 128).all()
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_uint8(torch.zeros(2, 6, 7))


def test_mp4_roundtrip_is_h264_yuv420p(tmp_path):
    frames = smooth_video()
    path = tmp_path / "v.mp4"
    write_mp4(path, frames, fps=16)
    info = ffmpeg_info(path)
    assert "h264" in info and "yuv420p" in info
    meta = probe_video(path)
    assert meta == dict(frames=8, fps=16.0, width=32, height=32, declared_frames=8)
    back = read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(float) - frames).mean() < 4.0
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temp files left behind


def test_odd_size_is_padded_not_rescaled(tmp_path):
    frames = smooth_video(t=4, h=17, w=31)
    path = tmp_path / "odd.mp4"
    write_mp4(path, frames, fps=10)
    meta = probe_video(path)
    assert (meta["width"], meta["height"]) == (32, 18)
    back = read_video(path)
    assert np.abs(back[:, :17, :31].astype(float) - frames).mean() < 4.0


def test_read_video_start_stride_max_frames_and_size(tmp_path):
    frames = smooth_video(t=12, h=24, w=40)
    path = tmp_path / "v.mp4"
    write_mp4(path, frames, fps=16)
    sub = read_video(path, max_frames=3, start=2, stride=3)
    full = read_video(path)
    np.testing.assert_array_equal(sub, full[2:11:3])
    assert len(read_video(path, max_frames=5)) == 5
    square = read_video(path, size=16)
    assert square.shape == (12, 16, 16, 3)
    np.testing.assert_array_equal(square, read_video(path, size=16))   # deterministic


def test_resize_square_centre_crops():
    frames = np.zeros((2, 20, 40, 3), np.uint8)
    frames[:, :, 10:30] = 255                                  # the centre half is white
    out = resize_square(frames, 10)
    assert out.shape == (2, 10, 10, 3)
    assert out.min() > 200                                     # only the centre survives the crop


def test_mp4_writer_streams_chunks_atomically(tmp_path):
    path = tmp_path / "stream.mp4"
    with Mp4Writer(path, fps=8) as writer:
        for chunk in np.split(smooth_video(t=9), 3):
            writer.write(chunk)
            assert not path.exists()                           # appears only when closed
    writer.close()                                             # closing twice is harmless
    assert probe_video(path)["frames"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stream.mp4"]
    with pytest.raises(ValueError, match="no frames"):
        Mp4Writer(tmp_path / "empty.mp4", fps=8).close()


def test_mp4_writer_aborts_on_error(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with Mp4Writer(path, fps=8) as writer:
            writer.write(smooth_video(t=2))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="size"):
        with Mp4Writer(tmp_path / "mixed.mp4", fps=8) as writer:
            writer.write(smooth_video(t=1, h=16, w=16))
            writer.write(smooth_video(t=1, h=18, w=16))
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "float.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=8)


def test_raw_writer_writes_rgb24_bytes():
    buf = io.BytesIO()
    frames = smooth_video(t=3, h=6, w=5)
    with RawWriter(buf) as writer:
        writer.write(frames[:2])
        writer.write(frames[2])                                # a single [H, W, 3] frame is fine too
    assert buf.getvalue() == frames.tobytes()
    assert writer.frames_written == 3


def test_gif_written_and_readable(tmp_path):
    frames = np.zeros((5, 16, 20, 3), np.uint8)
    for k in range(5):
        frames[k, :, 4 * k:4 * k + 4] = (255, 0, 0)            # a red bar moving right
    path = tmp_path / "a.gif"
    write_gif(path, frames, fps=10)
    with Image.open(path) as im:
        assert im.n_frames == 5 and im.info["loop"] == 0 and im.info["duration"] == 100
    back = read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(float) - frames).mean() < 2.0
    assert probe_video(path)["frames"] == 5


def test_png_frames_and_write_video_dispatch(tmp_path):
    frames = smooth_video(t=3, h=8, w=8)
    paths = write_png_frames(tmp_path / "f", frames)
    assert [p.name for p in paths] == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), frames[1])
    write_video(tmp_path / "v.mp4", frames, fps=8)
    write_video(tmp_path / "v.gif", frames, fps=8)
    assert (tmp_path / "v.mp4").is_file() and (tmp_path / "v.gif").is_file()
    with pytest.raises(ValueError, match=r"\.avi"):
        write_video(tmp_path / "v.avi", frames, fps=8)


def test_make_grid_tiles_with_separators():
    videos = np.zeros((5, 2, 4, 6, 3), np.uint8)
    for n in range(5):
        videos[n] = 10 * (n + 1)
    grid = make_grid(videos, nrow=3)
    assert grid.shape == (2, 2 * 4 + 2, 3 * 6 + 2 * 2, 3)
    assert (grid[:, 0:4, 8:14] == 20).all()                    # video 1: row 0, column 1
    assert (grid[:, 6:10, 0:6] == 40).all()                    # video 3: row 1, column 0
    assert (grid[:, 4:6] == 255).all()                         # horizontal separator
    assert (grid[:, 6:10, 16:22] == 0).all()                   # empty cell is black
    assert make_grid(videos).shape == (2, 2 * 4 + 2, 3 * 6 + 4, 3)  # default: ceil(sqrt(5)) = 3 per row
    from_tensor = make_grid(torch.zeros(2, 3, 3, 4, 4))        # float [N, T, C, H, W] in [-1, 1]
    assert from_tensor.shape == (3, 4, 10, 3)


def test_corrupt_and_missing_files_raise_video_read_error(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(VideoReadError, match="x.mp4") as err:
        probe_video(bad)
    assert isinstance(err.value, RuntimeError) and err.value.path == str(bad)
    with pytest.raises(VideoReadError, match="x.mp4"):
        read_video(bad)
    with pytest.raises(VideoReadError, match="not found"):
        probe_video(tmp_path / "missing.mp4")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert os.listdir(tmp_path) == ["x.mp4"]
