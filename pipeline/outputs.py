"""Job output folders: written beside the final folder, swapped in only when the job succeeds.

A failed or interrupted run leaves the previous output exactly as it was and removes its own
half-written folder; a rerun never appends to an earlier run's files. On a local disk the swap is
two renames (old folder aside, new folder in) and the old folder is deleted only once the new one is
in place. Cloud storage (s3://, gs://) has no folder rename: there the old output is deleted and the
new one copied over it, which is not atomic and is logged as such.

Outputs hold communications, so local folders are created private (files 0600, folders 0700) unless
the job's ``output_access`` setting says otherwise. A run killed outright (SIGKILL, power loss) can
leave a hidden ``.<name>.staging-*`` folder beside the output; it is never read and can be deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

log = logging.getLogger(__name__)

OutputAccess = Literal["owner", "group", "all"]
# (file mode, folder mode) per setting: only the owner, the owner's group too, or everyone may read.
MODES: dict[str, tuple[int, int]] = {"owner": (0o600, 0o700), "group": (0o640, 0o750), "all": (0o644, 0o755)}
ACCESS_DESCRIPTION = ("Who may read the output (it holds communications): 'owner' (files 0600, folders 0700), "
                      "'group' (0640/0750) or 'all' (0644/0755). Local folders only; cloud storage uses its own ACLs.")

_warned_cloud = False


def is_uri(path: str) -> bool:
    """True for a cloud or other remote URI (``s3://``, ``gs://``, ...), False for a local path."""
    return "://" in str(path)


def absolute(path: str) -> str:
    """A local path made absolute on the driver (Ray workers run in other directories); URIs unchanged."""
    return path if is_uri(path) else os.path.abspath(os.path.expanduser(path))


def remove_tree(path: str) -> None:
    """Delete a folder (local path or URI) if it exists."""
    if not is_uri(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(path)
    if fs.get_file_info(root).type != pyarrow.fs.FileType.NotFound:
        fs.delete_dir(root)


def apply_access(root: Path, access: str) -> None:
    """chmod every file under `root` to the setting's file mode and every folder (root included) to its folder mode."""
    file_mode, dir_mode = MODES[access]
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, dir_mode)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, file_mode)


@contextmanager
def staged_output(final_dir: str, access: str | None = "owner") -> Iterator[str]:
    """Yield a fresh staging folder to write a job's whole output into; on success it replaces `final_dir`.

    `final_dir` is a local path or a URI; the yielded path is absolute (local) or a URI. `access`
    ('owner', 'group', 'all') sets the modes of a local output; None keeps the process umask.
    On any exception the staging folder is deleted, `final_dir` is left untouched, and the
    exception propagates.
    """
    if is_uri(final_dir):
        with _staged_cloud(final_dir.rstrip("/")) as stage:
            yield stage
        return
    final = Path(absolute(final_dir))
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    # Private from the start: files Ray workers create inside cannot be reached before the modes are set.
    stage.mkdir(mode=0o700 if access else 0o777)
    try:
        yield str(stage)
        if access:
            apply_access(stage, access)
        _swap(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _swap(stage: Path, final: Path) -> None:
    """Put `stage` where `final` is: move the old folder aside, rename the new one in, delete the old."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
    try:
        os.rename(stage, final)
    except OSError:
        if old is not None:
            os.rename(old, final)  # put the previous output back before reporting the failure
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


@contextmanager
def _staged_cloud(final_uri: str) -> Iterator[str]:
    global _warned_cloud
    import pyarrow.fs

    if not _warned_cloud:
        log.warning("output %s is on cloud storage, where a folder cannot be renamed: the new output is staged "
                    "beside it and copied over the old one on success. The swap is NOT atomic there: a failure "
                    "during the copy leaves a partial output", final_uri)
        _warned_cloud = True
    stage = f"{final_uri}.staging-{uuid.uuid4().hex[:8]}"
    try:
        yield stage
    except BaseException:
        try:
            remove_tree(stage)
        except OSError as e:
            log.warning("could not delete the staging folder %s: %s", stage, e)
        raise
    remove_tree(final_uri)
    pyarrow.fs.copy_files(stage, final_uri)
    remove_tree(stage)
