"""The encoding a text data file is written in, as users' files come: UTF-8 (with or without the byte-order mark Excel
and Notepad write), UTF-16 (Excel's "Unicode Text", PowerShell's `>` and `Out-File`: a byte-order mark, or none with
every other byte zero), UTF-32, or a single-byte Windows code page (Excel's plain "CSV" on a Western European Windows,
cp1252; ISO-8859-1 reads the same but for 0x80-0x9F).

A file that is not UTF-8 and has no byte-order mark is read as cp1252 (else ISO-8859-1, where a byte cp1252 leaves
undefined occurs), and the output says so with the first byte that is not UTF-8: any byte sequence decodes in a
single-byte code page, so the guess is said rather than hidden. Where most of its letters would be bytes of 0x80 or
more, it is not Western European text: it is read in the code page charset_normalizer finds for it (cp1251 for
Russian, GB18030 for Chinese, Shift-JIS for Japanese), said too, or refused when none is found. A file that is UTF-8 in most places but not in a few
(damaged, or pasted together from files of two encodings), and a file of binary bytes, are refused naming the line.
"""

from __future__ import annotations

import codecs
import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from inferforge.errors import UserError

# Byte-order marks, longest first: UTF-32 LE's begins as UTF-16 LE's does.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
         (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
         (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))
_CHUNK = 1 << 20
# A valid UTF-8 sequence of two to four bytes (RFC 3629), and a byte of 0x80 or more.
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
                            rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
                            rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}")
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")
# Control characters no text file holds (tab, line feed, form feed and carriage return aside): a binary file.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class TextEncoding:
    """How to decode a file (`codec`, for `open`), and what the output should say about it (`note`, None: nothing)."""

    codec: str
    note: str | None = None


def _open_bytes(path: Path, compression: str | None):
    return path.open("rb") if compression is None else importlib.import_module(compression).open(path, "rb")


def _line_of(data: bytes, position: int) -> int:
    return data.count(b"\n", 0, position) + 1


def _utf16_without_bom(head: bytes) -> str | None:
    """utf-16-le / utf-16-be for text of UTF-16 code units without a byte-order mark (most of them ASCII, so one byte
    of each pair is zero), else None."""
    sample = head[: len(head) // 2 * 2][:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= 0.6 * len(odd) and even.count(0) <= 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) >= 0.6 * len(even) and odd.count(0) <= 0.1 * len(odd):
        return "utf-16-be"
    return None


def _first_bad_utf8(path: Path, compression: str | None) -> int | None:
    """The byte offset of the first byte that is not UTF-8 (streamed: a large UTF-8 file is not held in memory);
    None: the file is UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with _open_bytes(path, compression) as f:
        while True:
            chunk = f.read(_CHUNK)
            pending = len(decoder.getstate()[0])  # the start of a sequence the last chunk cut
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                return offset - pending + error.start
            if not chunk:
                return None
            offset += len(chunk)


def _binary(path: Path, text: str, data: bytes) -> UserError | None:
    found = _BINARY.search(text)
    if found is None:
        return None
    if data.startswith(b"PK\x03\x04"):
        return UserError(f"{path} is a zip archive, not a text file (an Excel .xlsx workbook is one); name it .xlsx if "
                         f"it is one, or save the sheet as CSV UTF-8.")
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        return UserError(f"{path} is an old Excel .xls workbook (or another Office file), not a text file; save the "
                         f"sheet as CSV UTF-8 or .xlsx.")
    if data.startswith(b"\x1f\x8b"):
        return UserError(f"{path} is gzip-compressed, not a text file; name it {path.name}.gz.")
    line = text.count("\n", 0, found.start()) + 1
    return UserError(f"{path} is not a text file: it holds binary bytes (the first on line {line}); give the labelled "
                     f"data as text (CSV, JSON Lines...) or Parquet.")


@functools.lru_cache(maxsize=64)
def _detected(path: Path, compression: str | None, stamp: tuple[int, int]) -> TextEncoding:
    """`stamp` (mtime, size): a file changed since is looked at again."""
    with _open_bytes(path, compression) as f:
        head = f.read(4096)
    for bom, codec, shown in _BOMS:
        if head.startswith(bom):
            return TextEncoding(codec)
    utf16 = _utf16_without_bom(head)
    if utf16 is not None:
        return TextEncoding(utf16, f"{path} has no byte-order mark but its every other byte is zero, so it is read as "
                                   f"UTF-16 {'little' if utf16.endswith('le') else 'big'}-endian")
    bad = _first_bad_utf8(path, compression)
    if bad is None:
        return TextEncoding("utf-8")
    # Not UTF-8: read whole, to tell a single-byte code page from UTF-8 damaged in a few places.
    with _open_bytes(path, compression) as f:
        data = f.read()
    sequences = _UTF8_SEQUENCE.findall(data)
    valid, invalid = len(sequences), len(_HIGH_BYTE.findall(data)) - sum(map(len, sequences))
    line, byte = _line_of(data, bad), data[bad]
    if valid >= invalid:
        raise UserError(f"{path} is UTF-8 text but for {invalid:,} byte{'s' if invalid != 1 else ''} (the first, "
                        f"0x{byte:02X}, on line {line}): it is damaged, or pasted together from files of two "
                        f"encodings; save it again as UTF-8.")
    try:
        text, codec, shown = data.decode("cp1252"), "cp1252", "Windows-1252 (cp1252, Western European)"
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: no cp1252 character
        text, codec, shown = data.decode("latin-1"), "latin-1", "ISO-8859-1 (latin-1)"
    error = _binary(path, text, data)
    if error is not None:
        raise error
    letters = sum(1 for character in text if character.isalpha())
    if invalid > WESTERN_SHARE * letters:  # mostly letters of another script: not Western European text
        return _other_script(path, data, byte, line)
    return TextEncoding(codec, f"{path} is not UTF-8 (byte 0x{byte:02X} on line {line} is not), so it is read as "
                               f"{shown}, as Excel and Notepad write text on Western European Windows; if letters "
                               f"look wrong in the output, save the file as UTF-8")


# In Western European text most letters are ASCII: French, German or Spanish prose has a few percent of accented
# ones. Where more than this share of the letters are bytes of 0x80 or more, the text is of another script (Cyrillic,
# Greek, Chinese, Japanese...) and cp1252 would turn it into accented Latin letters.
WESTERN_SHARE = 0.3
# Code pages of Latin letters: charset_normalizer tells them apart poorly on a short file (Spanish in cp1252 taken
# for cp1250), so a guess among them is not taken for a file that is not Western European text.
# Another code page whose reading is this close to the best one's in charset_normalizer's "chaos" (the share of
# unlikely characters): the guess is ambiguous.
AMBIGUOUS_CHAOS = 0.05
_LATIN_CODE_PAGES = {"cp1250", "cp1252", "cp1254", "cp1257", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4",
                     "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_roman",
                     "mac_latin2", "mac_iceland", "mac_turkish", "cp437", "cp850", "cp852", "cp858"}


def _other_script(path: Path, data: bytes, byte: int, line: int) -> TextEncoding:
    """A file that is not UTF-8 whose letters are mostly of another script than Latin: read in the code page
    charset_normalizer finds (cp1251 for Russian from Excel, GB18030 for Chinese), said in the output. Refused when
    it finds none outside the Latin ones, or when another code page reads the bytes as other text about as well (a
    short Japanese file reads as Korean too): a wrong guess would be scored without a word."""
    from charset_normalizer import from_bytes

    found = from_bytes(data)
    best = found.best()
    if best is None or best.encoding in _LATIN_CODE_PAGES:
        raise UserError(f"{path} is not UTF-8 (byte 0x{byte:02X} on line {line} is not) and its letters are not "
                        f"Western European, so its encoding cannot be told; save the file as UTF-8.")
    text = str(best)
    rivals = [match.encoding for match in found
              if match.chaos - best.chaos < AMBIGUOUS_CHAOS and match.encoding != best.encoding and str(match) != text]
    if rivals:
        raise UserError(f"{path} is not UTF-8 (byte 0x{byte:02X} on line {line} is not) and its bytes read as text in "
                        f"more than one code page ({', '.join([best.encoding, *rivals[:3]])}), so its encoding cannot be "
                        f"told; save the file as UTF-8.")
    languages = ", ".join(best.languages[:2])
    return TextEncoding(best.encoding, f"{path} is not UTF-8 (byte 0x{byte:02X} on line {line} is not); its bytes "
                                       f"read as {best.encoding} text{f' ({languages})' if languages else ''}, so it "
                                       f"is read so; if letters look wrong in the output, save the file as UTF-8")


def text_encoding(path: Path, compression: str | None = None) -> TextEncoding:
    """The encoding of a text data file (decompressed through the module `compression` names: gzip, bz2, lzma), found
    once per version of the file. A damaged or binary file is a UserError naming the line."""
    stat = path.stat()
    return _detected(path, compression, (stat.st_mtime_ns, stat.st_size))
