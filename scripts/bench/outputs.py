"""The files of a benchmark run: JSON and CSV in --out, the dated Markdown section in --markdown.

Every file is written to a temporary name next to it and moved into place, so an interrupted
run leaves the old file or the new one, never half of one.
"""

import csv
import io
import json
import os
import re
import tempfile

# A Markdown heading of level 1-3 ends a section (its own `####` subsections do not).
SECTION_END = re.compile(r"^#{1,3} ")


def check_markdown_path(path):
    """Raise before anything runs when `--markdown PATH` cannot be written.

    Raises:
        FileNotFoundError: the folder of `path` does not exist.
        ValueError: `path` exists and is not a file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--markdown must be in an existing folder; found no folder {folder}")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"--markdown must name a file; found a folder or special file at {path}")


def _write_atomically(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def replace_section(document, heading, section):
    """`document` with the section under `heading` replaced by `section`, or `section` appended.

    The old section runs from the line equal to `heading` to the next heading of level 1-3.

    Returns:
        (new document, True when a section was replaced).
    """
    lines = document.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == heading]
    if not starts:
        joiner = "" if not document or document.endswith("\n\n") else ("\n" if document.endswith("\n") else "\n\n")
        return document + joiner + section, False
    start = starts[0]
    end = next((i for i in range(start + 1, len(lines)) if SECTION_END.match(lines[i])), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else ""), True


def write_markdown(path, heading, section):
    """Append `section` to the Markdown file at `path`, or replace the section with the same heading.

    Returns:
        True when an existing section was replaced.
    """
    document = ""
    if os.path.exists(path):
        with open(path) as f:
            document = f.read()
    document, replaced = replace_section(document, heading, section)
    _write_atomically(path, document)
    return replaced


def write_json(path, payload):
    """The whole run (arguments, machine, rows, raw timings) as JSON."""
    _write_atomically(path, json.dumps(payload, indent=1, default=str) + "\n")


def write_csv(path, rows):
    """One CSV line per row; the columns are the union of the rows' keys (nested dicts and lists left out)."""
    fields = []
    for row in rows:
        fields += [key for key, value in row.items() if key not in fields and not isinstance(value, (dict, list))]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    _write_atomically(path, buffer.getvalue())
