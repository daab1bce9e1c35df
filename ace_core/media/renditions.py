"""Browser-playable renditions of video and audio items (PyAV): a file a browser plays as it
is (MP4 with H.264/AAC, WebM with VP8/VP9/AV1 and Opus/Vorbis, WAV, MP3, FLAC, Ogg) is
served as it is; any other (MPEG-1/2, MPEG-4 Part 2, most AVI/MKV, AIFF, ...) is transcoded
to MP4: H.264 (yuv420p, at most 720 lines) with AAC sound, or AAC alone for audio; a sound
only soundfile reads (WAV codecs FFmpeg lacks, such as NMS ADPCM) is read by soundfile, as the
decoders read it. At most ``MAX_SECONDS`` of a long file are rendered (the original stays at
/media). ``probe_rendition`` tells a whole rendition from a damaged or truncated one."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAX_SECONDS = 600.0
MAX_LINES = 720
PLAYABLE = {  # container (by av format name) -> (video codecs, audio codecs) browsers play
    "mp4": ({"h264", "av1"}, {"aac", "mp3", "opus"}),
    "webm": ({"vp8", "vp9", "av1"}, {"opus", "vorbis"}),
    "wav": (set(), {"pcm_s16le", "pcm_u8", "pcm_f32le", "pcm_s24le"}),
    "mp3": (set(), {"mp3"}),
    "flac": (set(), {"flac"}),
    "ogg": ({"theora", "vp8"}, {"vorbis", "opus", "flac"}),
}
_MP4_OPTIONS = {"movflags": "+faststart"}  # the index first: plays before it is all sent


class RenditionError(Exception):
    """The file cannot be made playable (unreadable, no stream to render); the message names
    no path."""


def playable_as_is(path: str | Path) -> bool:
    """True when a browser plays ``path`` as it is (by container and codecs, not suffix)."""
    import av

    try:
        with av.open(str(path)) as c:
            name = _container(c.format.name, Path(path).suffix.lower())
            if name not in PLAYABLE:
                return False
            video, audio = PLAYABLE[name]
            return all(
                (s.type == "video" and _codec(s) in video)
                or (s.type == "audio" and _codec(s) in audio)
                for s in c.streams
                if s.type in ("video", "audio")
            )
    except (av.FFmpegError, OSError, ValueError):
        return False


def _codec(stream) -> str:
    """The codec's own name (mp3), not its decoder's (mp3float)."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def _container(format_name: str, suffix: str) -> str:
    names = set(format_name.split(","))
    if "mp4" in names:
        return "mp4" if suffix in (".mp4", ".m4a", ".m4v") else "mov"
    if "webm" in names:
        return "webm" if suffix == ".webm" else "matroska"
    return next((n for n in ("wav", "mp3", "flac", "ogg") if n in names), format_name)


def write_rendition(src: str | Path, dst: str | Path) -> str:
    """Transcode ``src`` to an MP4 at ``dst``; returns its MIME type (video/mp4, audio/mp4)."""
    import av

    try:
        with av.open(str(src)) as inp:
            video = next(iter(inp.streams.video), None)
            audio = next(iter(inp.streams.audio), None)
            if video is None and audio is None:
                raise RenditionError("no video or audio stream")
            with av.open(str(dst), "w", format="mp4", options=_MP4_OPTIONS) as out:
                _transcode(inp, out, video, audio)
    except av.FFmpegError as e:
        if not _soundfile_reads(src):
            raise RenditionError(f"cannot decode: {e.strerror or type(e).__name__}") from e
        _write_soundfile_rendition(src, dst)  # a sound FFmpeg cannot decode, read as indexed
        return "audio/mp4"
    return "video/mp4" if video is not None else "audio/mp4"


def probe_rendition(file: str | Path | BinaryIO) -> bool:
    """True when ``file`` (a path or an open binary file) is a whole rendition: it opens, has
    a video or audio stream and a duration, and every packet its index lists reads in full (a
    truncated file's are missing or cut). Reads the packets without decoding them."""
    import av

    try:
        with av.open(file if hasattr(file, "read") else str(file)) as c:
            streams = [s for s in c.streams if s.type in ("video", "audio")]
            listed = sum(s.frames for s in streams)
            if not streams or not c.duration or c.duration <= 0 or listed <= 0:
                return False
            read = 0
            for packet in c.demux(*streams):
                if packet.is_corrupt:
                    return False
                read += packet.size > 0
            return read == listed
    except (av.FFmpegError, OSError, ValueError):
        return False


def _soundfile_reads(src: str | Path) -> bool:
    import soundfile as sf

    try:
        return sf.info(str(src)).frames > 0
    except Exception:  # noqa: BLE001 - soundfile raises several types for what it cannot read
        return False


def _write_soundfile_rendition(src: str | Path, dst: str | Path) -> None:
    """AAC in MP4 of a sound read by soundfile, second by second (more than two channels are
    mixed down to one)."""
    import av
    import soundfile as sf

    try:
        with sf.SoundFile(str(src)) as f:
            rate, limit = f.samplerate, int(MAX_SECONDS * f.samplerate)
            layout = "stereo" if f.channels == 2 else "mono"
            with av.open(str(dst), "w", format="mp4", options=_MP4_OPTIONS) as out:
                a_out = out.add_stream("aac", rate=48000, layout="stereo")
                resample = _aac_resampler()
                read = 0
                while read < limit:  # read(), not blocks(): some (NMS ADPCM) cannot seek
                    block = f.read(min(rate, limit - read), dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    read += len(block)
                    block = block if f.channels <= 2 else block.mean(axis=1, keepdims=True)
                    frame = av.AudioFrame.from_ndarray(
                        np.ascontiguousarray(block).reshape(1, -1), format="flt", layout=layout
                    )  # (1, samples * channels): interleaved
                    frame.rate = rate
                    for part in resample.resample(frame):
                        out.mux(a_out.encode(part))
                _flush_audio(out, a_out, resample)
    except (av.FFmpegError, sf.LibsndfileError, RuntimeError) as e:
        reason = (isinstance(e, av.FFmpegError) and e.strerror) or type(e).__name__
        raise RenditionError(f"cannot decode: {reason}") from e


def _transcode(inp, out, video, audio) -> None:
    import av

    v_out = _video_stream(out, video) if video is not None else None
    a_out = out.add_stream("aac", rate=48000, layout="stereo") if audio is not None else None
    resample = _aac_resampler()
    streams = [s for s in (video, audio) if s is not None]
    n_frames = 0
    for frame in inp.decode(*streams):
        if frame.time is not None and frame.time > MAX_SECONDS:
            if isinstance(frame, av.VideoFrame) or video is None:
                break
            continue
        if isinstance(frame, av.VideoFrame):
            frame = frame.reformat(v_out.width, v_out.height, "yuv420p")
            frame.pts, frame.time_base = n_frames, 1 / v_out.average_rate  # constant rate
            n_frames += 1
            out.mux(v_out.encode(frame))
        else:
            frame.pts = None
            for part in resample.resample(frame):
                out.mux(a_out.encode(part))
    if a_out is not None:
        _flush_audio(out, a_out, resample)
    if v_out is not None:
        out.mux(v_out.encode())


def _aac_resampler():
    import av

    return av.AudioResampler(format="fltp", layout="stereo", rate=48000, frame_size=1024)


def _flush_audio(out, a_out, resample) -> None:
    for part in resample.resample(None):
        out.mux(a_out.encode(part))
    out.mux(a_out.encode())


def _video_stream(out, video):
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    rate = Fraction(rate).limit_denominator(1001) if rate <= 120 else Fraction(30)
    scale = min(1.0, MAX_LINES / max(video.codec_context.height, 1))
    stream = out.add_stream("libx264", rate=rate)
    stream.width = max(2, int(video.codec_context.width * scale) // 2 * 2)
    stream.height = max(2, int(video.codec_context.height * scale) // 2 * 2)
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23"}
    return stream
