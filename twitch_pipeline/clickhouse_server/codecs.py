"""HTTP body compression as ClickHouse speaks it: ``Content-Encoding`` in, ``Accept-Encoding`` out.

clickhouse-connect compresses inserts (lz4 frames by default, else zstd/gzip/deflate) and asks for
compressed results. Request bodies are decoded as a stream so a large insert never sits in memory
twice; a body may hold several concatenated frames (one per block a client flushes).
"""

from __future__ import annotations

import gzip
import zlib
from typing import Callable, Iterable, Iterator

import lz4.frame

try:  # Python 3.14 has zstd in the standard library; clickhouse-connect installs the backport before that.
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd  # type: ignore[import-not-found,no-redef]

from twitch_pipeline.clickhouse_server.errors import ClickHouseError

IDENTITY = ("", "identity")


def _zlib_decoder(wbits: int) -> Callable[[], object]:
    return lambda: zlib.decompressobj(wbits)


# Streaming decompressors: objects with .decompress(bytes), .eof and .unused_data.
_DECODERS: dict[str, Callable[[], object]] = {
    "gzip": _zlib_decoder(16 + zlib.MAX_WBITS),
    "x-gzip": _zlib_decoder(16 + zlib.MAX_WBITS),
    "deflate": _zlib_decoder(zlib.MAX_WBITS),
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": zstd.ZstdDecompressor,
}

# Whole-buffer compressors for responses, in the order we prefer when a client accepts several.
_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": lambda data: lz4.frame.compress(data),
    "zstd": lambda data: zstd.compress(data),
    "gzip": lambda data: gzip.compress(data, compresslevel=3),
    "deflate": lambda data: zlib.compress(data, 3),
}


def unknown_encoding(name: str) -> ClickHouseError:
    supported = ", ".join(sorted(_DECODERS))
    return ClickHouseError(36, "BAD_ARGUMENTS", f"Unknown Content-Encoding '{name}' (supported: {supported})")


def decode(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Decompress a body given as chunks; ``encoding`` is the request's Content-Encoding."""
    encoding = encoding.strip().lower()
    if encoding in IDENTITY:
        yield from chunks
        return
    factory = _DECODERS.get(encoding)
    if factory is None:
        raise unknown_encoding(encoding)
    decoder = factory()
    for chunk in chunks:
        while chunk:
            try:
                out = decoder.decompress(chunk)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - each codec has its own error type
                raise ClickHouseError(271, "CANNOT_DECOMPRESS", f"Cannot decompress {encoding} request body: {exc}") from None
            if out:
                yield out
            chunk = b""
            if getattr(decoder, "eof", False):  # frame ended: whatever follows is the next frame
                chunk = decoder.unused_data  # type: ignore[attr-defined]
                decoder = factory()


def choose_encoding(accept_encoding: str) -> str | None:
    """The first encoding the client accepts that we can produce (the client lists its preference)."""
    for item in accept_encoding.split(","):
        name = item.split(";")[0].strip().lower()
        if name in _ENCODERS:
            return name
    return None


def encode(data: bytes, encoding: str) -> bytes:
    return _ENCODERS[encoding](data)
