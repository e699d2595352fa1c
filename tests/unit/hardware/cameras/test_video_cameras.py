"""The video-file and OpenCV cameras, on small videos written with PyAV for each test session.

Each frame carries its own index as eight black/white blocks (one bit each) in its top rows, which
survive H.264 compression, over per-frame random noise that only a lossless codec (FFV1) keeps.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from deeplabstream.core.frames import FrameGeometry, FrameStamp
from deeplabstream.core.schema import Where, parse_section
from deeplabstream.hardware.cameras.base import CameraError
from deeplabstream.hardware.cameras.opencv import OpenCVCamera, OpenCVSettings
from deeplabstream.hardware.cameras.video import VideoCamera, VideoSettings

FRAMES = 45
FPS = 30
WIDTH, HEIGHT = 160, 120
BIT_BLOCK_WIDTH = WIDTH // 8
BIT_ROWS = 48  # three rows of 16-pixel macroblocks, so the noise below does not bleed in


def frame_image(index: int) -> np.ndarray:
    """The BGR image written as frame ``index``: its index in bit blocks over random noise."""
    image = np.random.default_rng(index).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    for bit in range(8):
        columns = slice(bit * BIT_BLOCK_WIDTH, (bit + 1) * BIT_BLOCK_WIDTH)
        image[:BIT_ROWS, columns] = 255 if (index >> bit) & 1 else 0
    return image


def index_in_image(image: np.ndarray) -> int:
    """Read back the index that :func:`frame_image` drew (tolerates lossy compression)."""
    value = 0
    for bit in range(8):
        left = bit * BIT_BLOCK_WIDTH
        block = image[8 : BIT_ROWS - 8, left + 4 : left + BIT_BLOCK_WIDTH - 4]
        if block.mean() > 128:
            value |= 1 << bit
    return value


def write_video(path: Path, codec: str, pixel_format: str) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pixel_format
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(frame_image(index), format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        # FFV1 in BGR is lossless: decoded pixels must equal the written ones exactly.
        "ffv1": write_video(folder / "lossless.mkv", "ffv1", "bgr0"),
        "h264": write_video(folder / "lossy.mp4", "libx264", "yuv420p"),
    }


def video_settings(path: Path, **keys: object) -> VideoSettings:
    return VideoSettings(path=path, **{"pacing": "free", **keys})  # type: ignore[arg-type]


def open_camera(camera: VideoCamera | OpenCVCamera) -> Iterator[tuple[np.ndarray, FrameStamp]]:
    """Open ``camera``, yield (pixels, stamp) until it ends, and close it."""
    geometry = camera.open()
    out = np.empty(geometry.shape, np.uint8)
    try:
        while (stamp := camera.grab(out)) is not None:
            yield out.copy(), stamp
    finally:
        camera.close()


def read_all(camera: VideoCamera | OpenCVCamera) -> tuple[list[np.ndarray], list[FrameStamp]]:
    pairs = list(open_camera(camera))
    return [image for image, _ in pairs], [stamp for _, stamp in pairs]


def read_first(camera: VideoCamera, count: int) -> list[tuple[np.ndarray, FrameStamp]]:
    pairs = []
    for pair in open_camera(camera):
        pairs.append(pair)
        if len(pairs) == count:
            break
    return pairs


# -- VideoCamera ----------------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["pyav", "opencv"])
def test_lossless_video_gives_every_frame_with_its_index_time_and_exact_pixels(
    videos: dict[str, Path], reader: str
) -> None:
    camera = VideoCamera("v", video_settings(videos["ffv1"], reader=reader))
    images, stamps = read_all(camera)

    assert [s.frame_index for s in stamps] == list(range(FRAMES))
    # Matroska stores times in milliseconds, so 1/30 s comes back as 0.033 s.
    assert [s.camera_timestamp for s in stamps] == pytest.approx(
        [i / FPS for i in range(FRAMES)], abs=5e-4
    )
    for index, image in enumerate(images):
        np.testing.assert_array_equal(image, frame_image(index), err_msg=f"frame {index}")


@pytest.mark.parametrize("reader", ["pyav", "opencv"])
def test_h264_video_gives_frames_in_order_with_exact_timestamps(
    videos: dict[str, Path], reader: str
) -> None:
    camera = VideoCamera("v", video_settings(videos["h264"], reader=reader))
    images, stamps = read_all(camera)

    assert [s.frame_index for s in stamps] == list(range(FRAMES))
    assert [index_in_image(image) for image in images] == list(range(FRAMES))
    assert [s.camera_timestamp for s in stamps] == pytest.approx(
        [i / FPS for i in range(FRAMES)], abs=1e-6
    )


@pytest.mark.parametrize("codec", ["ffv1", "h264"])
def test_pyav_and_opencv_readers_agree_on_frames_indices_and_times(
    videos: dict[str, Path], codec: str
) -> None:
    results = {
        reader: read_all(VideoCamera("v", video_settings(videos[codec], reader=reader)))
        for reader in ("pyav", "opencv")
    }
    (pyav_images, pyav_stamps), (cv_images, cv_stamps) = results["pyav"], results["opencv"]

    assert [s.frame_index for s in pyav_stamps] == [s.frame_index for s in cv_stamps]
    assert [s.camera_timestamp for s in pyav_stamps] == pytest.approx(
        [s.camera_timestamp for s in cv_stamps], abs=1e-6
    )
    assert [index_in_image(i) for i in pyav_images] == [index_in_image(i) for i in cv_images]


def test_open_reports_geometry_rate_and_description(videos: dict[str, Path]) -> None:
    camera = VideoCamera("v", video_settings(videos["h264"]))
    try:
        assert camera.open() == FrameGeometry(height=HEIGHT, width=WIDTH, channels=3)
        assert camera.nominal_fps == pytest.approx(FPS)
        description = camera.describe()
    finally:
        camera.close()
    assert description == {
        "file": str(videos["h264"]),
        "reader": "pyav",
        "codec": "h264",
        "frames": FRAMES,
    }


@pytest.mark.parametrize("reader", ["pyav", "opencv"])
def test_loop_keeps_counting_indices_and_time_across_loops(
    videos: dict[str, Path], reader: str
) -> None:
    # H.264 in MP4 keeps exact times (MKV rounds to milliseconds, and loops add the rounding up).
    camera = VideoCamera("v", video_settings(videos["h264"], reader=reader, loop=True))
    count = 2 * FRAMES + 5
    pairs = read_first(camera, count)

    assert [stamp.frame_index for _, stamp in pairs] == list(range(count))
    assert [stamp.camera_timestamp for _, stamp in pairs] == pytest.approx(
        [i / FPS for i in range(count)], abs=1e-6
    )
    assert [index_in_image(image) for image, _ in pairs] == [i % FRAMES for i in range(count)]


@pytest.mark.parametrize("reader", ["pyav", "opencv"])
def test_mono_gives_grey_frames_close_to_the_colour_ones(
    videos: dict[str, Path], reader: str
) -> None:
    camera = VideoCamera("v", video_settings(videos["ffv1"], reader=reader, pixel_format="mono8"))
    try:
        assert camera.open() == FrameGeometry(height=HEIGHT, width=WIDTH, channels=1)
    finally:
        camera.close()
    images, stamps = read_all(camera)

    assert len(stamps) == FRAMES
    for index, image in enumerate(images):
        expected = cv2.cvtColor(frame_image(index), cv2.COLOR_BGR2GRAY)
        # swscale (PyAV) and OpenCV round the weighted sum differently: at most by one level.
        assert np.abs(image.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("reader", ["pyav", "opencv"])
def test_native_pacing_spaces_frames_like_a_live_camera(
    videos: dict[str, Path], reader: str
) -> None:
    camera = VideoCamera("v", video_settings(videos["h264"], reader=reader, pacing="native"))
    _, stamps = read_all(camera)

    intervals_ms = np.diff([s.host_timestamp_ns for s in stamps]) / 1e6
    assert 20 < float(np.median(intervals_ms)) < 60  # 33 ms nominal; the host may be busy


STALL_S = 0.5


def test_native_pacing_measures_how_late_frames_went_out_after_a_stalled_reader(
    videos: dict[str, Path],
) -> None:
    """The reader stalls on purpose after frame 0: frame 1 (due 33 ms later) goes out late."""
    camera = VideoCamera("v", video_settings(videos["h264"], pacing="native"))
    geometry = camera.open()
    out = np.empty(geometry.shape, np.uint8)
    try:
        camera.grab(out)
        time.sleep(STALL_S)  # the stalled reader: nobody takes a frame for half a second
        while camera.grab(out) is not None:
            pass
        delivery = camera.describe()["delivery"]
    finally:
        camera.close()
    interval_ms = 1000 / FPS
    assert delivery["frame_interval_ms"] == pytest.approx(interval_ms, abs=1e-3)
    late = delivery["late_ms"]
    assert late["count"] == FRAMES - 1  # the first frame sets the pace
    # Frame 1 was due one interval after frame 0 and went out after the stall, at the least.
    assert late["max"] >= STALL_S * 1000 - interval_ms
    # Every frame due during the stall went out more than an interval late.
    assert delivery["frames_late"] >= int(STALL_S * FPS) - 2


def test_free_pacing_has_no_delivery_figures(videos: dict[str, Path]) -> None:
    camera = VideoCamera("v", video_settings(videos["h264"], pacing="free"))
    read_all(camera)
    assert "delivery" not in camera.describe()


def test_free_pacing_delivers_all_frames_without_waiting(videos: dict[str, Path]) -> None:
    camera = VideoCamera("v", video_settings(videos["h264"], pacing="free"))
    _, stamps = read_all(camera)

    assert len(stamps) == FRAMES
    host_ns = [s.host_timestamp_ns for s in stamps]
    assert host_ns == sorted(host_ns)


def test_corrupt_file_gives_a_camera_error_naming_it(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(np.random.default_rng(1).bytes(20_000))

    for reader in ("pyav", "opencv"):
        camera = VideoCamera("v", video_settings(corrupt, reader=reader))
        with pytest.raises(CameraError, match=r"broken\.mp4"):
            camera.open()
        camera.close()


def test_file_without_video_stream_is_refused(tmp_path: Path) -> None:
    audio_only = tmp_path / "sound.mkv"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    camera = VideoCamera("v", video_settings(audio_only))
    with pytest.raises(CameraError, match=r"sound\.mkv.*no video stream"):
        camera.open()


# -- VideoSettings --------------------------------------------------------------------------


def parse_video_section(items: dict[str, str]) -> tuple[VideoSettings | None, list[str]]:
    problems: list[str] = []
    parsed = parse_section(VideoSettings, items, Where(Path("x.ini"), "Camera v"), problems)
    return parsed, problems


def test_settings_parse_from_ini_text(videos: dict[str, Path]) -> None:
    parsed, problems = parse_video_section(
        {"PATH": str(videos["h264"]), "PACING": "free", "LOOP": "yes", "PIXEL_FORMAT": "mono8"}
    )
    assert problems == []
    assert parsed == VideoSettings(
        path=videos["h264"], pacing="free", loop=True, pixel_format="mono8", reader="pyav"
    )


def test_settings_report_a_missing_file_with_file_and_section(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.mp4"
    parsed, problems = parse_video_section({"PATH": str(missing)})

    assert parsed is None
    assert len(problems) == 1
    assert "x.ini" in problems[0]
    assert "[Camera v]" in problems[0]
    assert f"file not found: {missing}" in problems[0]


def test_settings_report_a_bad_pacing_with_the_choices(videos: dict[str, Path]) -> None:
    parsed, problems = parse_video_section({"PATH": str(videos["h264"]), "PACING": "fast"})

    assert parsed is None
    assert len(problems) == 1
    assert "PACING = 'fast'" in problems[0]
    assert "one of native, free" in problems[0]


# -- OpenCVCamera ---------------------------------------------------------------------------


def test_opencv_camera_reads_a_video_file_given_as_device(videos: dict[str, Path]) -> None:
    camera = OpenCVCamera("cam", OpenCVSettings(device=str(videos["ffv1"])))
    images, stamps = read_all(camera)

    assert [s.frame_index for s in stamps] == list(range(FRAMES))
    for index, image in enumerate(images):
        np.testing.assert_array_equal(image, frame_image(index))
    # A file has a clock (its timestamps), unlike a live device.
    assert [s.camera_timestamp for s in stamps] == pytest.approx(
        [i / FPS for i in range(FRAMES)], abs=5e-4
    )


def test_opencv_camera_converts_to_mono(videos: dict[str, Path]) -> None:
    settings = OpenCVSettings(device=str(videos["ffv1"]), pixel_format="mono8")
    pairs = list(zip(range(3), open_camera(OpenCVCamera("cam", settings)), strict=False))

    for index, (_, (image, stamp)) in enumerate(pairs):
        assert stamp.frame_index == index
        np.testing.assert_array_equal(image, cv2.cvtColor(frame_image(index), cv2.COLOR_BGR2GRAY))


def test_opencv_camera_uses_the_real_size_and_warns_when_the_request_is_not_met(
    videos: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    settings = OpenCVSettings(device=str(videos["ffv1"]), width=640, height=480)
    camera = OpenCVCamera("cam", settings)
    with caplog.at_level(logging.WARNING, logger="deeplabstream.hardware.cameras.opencv"):
        geometry = camera.open()
    camera.close()

    assert geometry == FrameGeometry(height=HEIGHT, width=WIDTH, channels=3)
    assert "asked for 640x480, the camera delivers 160x120" in caplog.text


def test_opencv_camera_with_a_device_index_that_does_not_exist_says_what_to_check() -> None:
    camera = OpenCVCamera("cam", OpenCVSettings(device="57", timeout=0.5))

    with pytest.raises(CameraError) as raised:
        camera.open()

    message = str(raised.value)
    assert "camera 'cam' (opencv device 57)" in message
    assert "could not be opened" in message
    if sys.platform.startswith("linux"):  # the message lists the devices there are (or none)
        assert "/dev/video" in message
    camera.close()  # already closed by the failed open; must stay harmless


def test_opencv_settings_reject_an_empty_device() -> None:
    problems: list[str] = []
    parsed = parse_section(
        OpenCVSettings, {"DEVICE": "  "}, Where(Path("x.ini"), "Camera c"), problems
    )

    assert parsed is None
    assert "DEVICE is empty" in problems[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_opencv_camera_reports_a_stream_that_stalls_for_longer_than_timeout(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    # A named pipe fed two thirds of a video and then kept open behaves like a live stream that
    # stops sending: OpenCV's read blocks, and only the TIMEOUT can end the wait.
    pipe = tmp_path / "stalled-stream"
    os.mkfifo(pipe)
    data = videos["ffv1"].read_bytes()
    release_writer = threading.Event()

    def feed_then_stall() -> None:
        with pipe.open("wb") as stream:
            stream.write(data[: len(data) * 2 // 3])
            stream.flush()
            release_writer.wait()

    writer = threading.Thread(target=feed_then_stall)
    writer.start()
    camera = OpenCVCamera("cam", OpenCVSettings(device=str(pipe), timeout=0.5))
    delivered: list[FrameStamp] = []
    try:
        out = np.empty(camera.open().shape, np.uint8)
        with pytest.raises(CameraError, match=r"stopped delivering frames.*0\.5 s \(TIMEOUT\)"):
            while (stamp := camera.grab(out)) is not None:
                delivered.append(stamp)
    finally:
        camera.close()
        release_writer.set()  # the end of the pipe also frees the read left hanging
        writer.join()
    assert len(delivered) > 0
    assert np.isnan(delivered[0].camera_timestamp)  # a pipe is a live stream: no camera clock
