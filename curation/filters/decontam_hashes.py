"""Decontamination's hashes: a text's words (NFKC, case-folded runs of letters and digits) and
their 64-bit hashes, the hashes of every run of n consecutive words, and the 256-bit perceptual
hash of an image. Benchmark items and pairs, benchmark images and page images are all hashed by
these same functions, in every process alike.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from functools import lru_cache

import imagehash
import numpy as np
from PIL import Image

MULTIPLIER = np.uint64(0x100000001B3)  # odd: the polynomial over word hashes, mod 2^64
MASK64 = (1 << 64) - 1
HASH_SIDE = 128  # an image's short side is reduced to 1-2x this before its phash
HASH_SIZE = 16  # phash reads a 64x64 grey image and keeps 16x16 DCT coefficients
HASH_BITS = HASH_SIZE * HASH_SIZE
HASH_WORDS = HASH_BITS // 64  # a hash is stored as 4 uint64: bit b in word b // 64
WORD = re.compile(r"[^\W_]+")  # letters and digits: `tokens.PLAIN_WORD` without "_"
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def words_of(text: str) -> list[str]:
    """NFKC, case-folded runs of letters and digits: punctuation (underscores too) and spacing
    dropped, and thousands separators ("1,250" and "1250" are one word)."""
    return WORD.findall(THOUSANDS.sub("", unicodedata.normalize("NFKC", text or "")).casefold())


@lru_cache(maxsize=1 << 18)
def word_hash(word: str) -> int:
    """A 64-bit hash of a word, the same in every process (blake2b, not Python's salted hash)."""
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def sequence_hash(words: list[str]) -> int:
    """The hash of a whole run of words: what `window_hashes` gives for the same run."""
    value = 0
    for word in words:
        value = (value * int(MULTIPLIER) + word_hash(word)) & MASK64
    return value


def window_hashes(
    sequences: list[list[str]], lengths: set[int]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each length L: the hashes of every run of L consecutive words of each sequence, and
    the sequence each run is in (runs never cross from one sequence into the next)."""
    sizes = np.fromiter(map(len, sequences), np.int64, len(sequences))
    owners = np.repeat(np.arange(len(sequences)), sizes)
    codes = np.fromiter(
        (word_hash(w) for seq in sequences for w in seq), np.uint64, int(sizes.sum())
    )
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    values = np.zeros(len(codes), np.uint64)
    for length in range(1, max(lengths, default=0) + 1):
        if len(codes) < length:
            break
        # values[j] is the hash of the run of `length` words from position j
        values = values[: len(codes) - length + 1] * MULTIPLIER + codes[length - 1 :]
        if length in lengths:
            whole = owners[: len(values)] == owners[length - 1 :]
            found[length] = values[whole], owners[: len(values)][whole]
    return found


def image_hash(image: Image.Image) -> np.ndarray:
    """The 256-bit perceptual hash of an image, as 4 uint64 words: `imagehash.phash` (hash_size
    16) of its grey levels, box-reduced first to 128-255 pixels on the short side (phash reads
    64x64; on a 150 dpi page 1.2 ms instead of 18, and every image, benchmark or page, is
    hashed the same way)."""
    grey = image.convert("L")
    factor = min(grey.size) // HASH_SIDE
    reduced = grey.reduce(factor) if factor > 1 else grey
    bits = imagehash.phash(reduced, hash_size=HASH_SIZE).hash.flatten()
    return np.packbits(bits).view(">u8").astype(np.uint64)


def bytes_hash(data: bytes) -> np.ndarray | None:
    """The perceptual hash of encoded image bytes, or None when they are not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("L", (256, 256))  # JPEG: decoded at a reduced size
            return image_hash(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
