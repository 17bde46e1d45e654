"""Reading and writing user files: .npy/.npz without pickle, JSON, RDM files, transfer
affinities; every write is atomic.

Modules: `atomic` (one file), `file_sets` (files written together), `array_files` (safe
.npy/.npz reading, also a block of rows at a time), `rdm_files` (RDMs from arrays and files),
`rdm_blocks` (RDM files a block of RDMs at a time), `affinities` (transfer-affinity files).
Everything public is re-exported here: `from fastrsa import io; io.save_json(...)`.

Writes
------
- `atomic_write` (and `save_npz`, `save_json`): one file, through a temporary sibling
  `.NAME.<pid>-<host>-<random>.tmp`, renamed over the target: a reader sees the old file or the
  new one, never half of one.
- `write_set`: several files that belong together (a taxonomy's .json, .npz and figures). They
  are written into a temporary sibling folder `.MANIFEST.<pid>-<host>-<random>.tmp/`; when all
  are written the folder is renamed to `....commit` (the commit point: one atomic rename), then
  its files are moved into place, the manifest last, under an exclusive lock on the folder. A
  killed write before the commit point leaves the old set untouched (its temporary folder is
  removed by the next write); a write killed after it is completed ("rolled forward") by the next
  `write_set` or `recover` on that folder. The manifest records the SHA-256 of every member, so a
  reader can still tell a mixed set (`verify_set`) in the instant between two moves.
- Temporaries of killed writes are removed by the next write into the same folder. A temporary
  is left alone while the process that made it still runs (a concurrent writer); temporaries of
  another machine (shared file systems) are removed once a day old.
- Output paths that cannot be written (an existing folder, a file where a folder should be, no
  permission, a full disk) raise a one-line ValueError naming the path; nothing is left behind.
"""

from .affinities import load_affinities
from .array_files import RowReader, load_arrays, open_rows, read_npy_header, rows_of, too_big_error
from .atomic import atomic_write, clean_temporaries, json_bytes, save_json, save_npz
from .file_sets import file_sha256, recover, verify_set, write_set
from .rdm_blocks import RDMFile, RDMScan
from .rdm_files import READINGS, load_rdms, rdms_from_arrays

__all__ = [
    "READINGS",
    "RDMFile",
    "RDMScan",
    "RowReader",
    "atomic_write",
    "clean_temporaries",
    "file_sha256",
    "json_bytes",
    "load_affinities",
    "load_arrays",
    "load_rdms",
    "open_rows",
    "rdms_from_arrays",
    "read_npy_header",
    "recover",
    "rows_of",
    "save_json",
    "save_npz",
    "too_big_error",
    "verify_set",
    "write_set",
]
