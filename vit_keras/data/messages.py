"""One-line error text: an exception's reason, and what a file looks like from its first bytes."""

_FILE_KINDS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip stream"),
    (b"\x93NUMPY", "a .npy array"),
    (b"\x00\x00\x08", "an IDX file"),
)


def one_line(text, limit=240):
    """`text` on one line (whitespace runs collapsed), cut to `limit` characters with "..."."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_reason(error):
    """ "ExceptionType: message" of `error`, on one line, for the parentheses of an error message."""
    return one_line(f"{type(error).__name__}: {error}")


def file_kind(head):
    """What a file that starts with the bytes `head` looks like, for error messages."""
    if not head:
        return "an empty file (0 bytes)"
    for signature, kind in _FILE_KINDS:
        if head.startswith(signature):
            return kind
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head[:16]):
        return f"text ({head[:16].decode('ascii')!r})"
    return f"bytes {head[:8].hex(' ')}"
