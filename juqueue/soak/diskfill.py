"""A work dir on small file systems the soak can fill: one tmpfs for the whole work dir (store,
broker AOF, node files) and one inside it for the experiment's run dirs, so the two disk-full
phases hit first the run dirs alone, then everything.

Mounting needs root (or CAP_SYS_ADMIN); without it the work dir is a plain directory and the disk
phases are skipped, which the soak says (`DiskFull.reason`).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

CHUNK = b"\0" * (1 << 20)
FILL_NAME = ".soak-fill"


class DiskFull:
    def __init__(self, work_dir: Path, run_dirs: Path, work_mb: int = 256, run_dirs_mb: int = 64) -> None:
        self.work_dir, self.run_dirs = work_dir, run_dirs
        self.sizes = (work_mb, run_dirs_mb)
        self.mounted: list[Path] = []
        self.reason: str | None = None  # why the disk phases cannot run, once known
        self._fills: list[Path] = []

    def mount(self) -> bool:
        """Mount both file systems; False (and `reason`) when this process may not."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.reason = "not root: cannot mount a small file system for the work dir"
            return False
        for path, size in ((self.work_dir, self.sizes[0]), (self.run_dirs, self.sizes[1])):
            path.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}m,mode=0755", "tmpfs", str(path)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                self.reason = f"cannot mount tmpfs on {path}: {proc.stderr.strip() or proc.returncode}"
                self.unmount()
                return False
            self.mounted.append(path)
        return True

    def fill(self, whole_work_dir: bool) -> str:
        """Fill the run dirs' file system (and the work dir's, when `whole_work_dir`) until ENOSPC."""
        targets = [self.run_dirs] + ([self.work_dir] if whole_work_dir else [])
        written = []
        for target in targets:
            path = target / FILL_NAME
            n = 0
            try:
                with open(path, "ab") as out:
                    while True:
                        out.write(CHUNK)
                        n += 1
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
            self._fills.append(path)
            written.append(f"{target}: {n} MiB until ENOSPC")
        return "; ".join(written)

    def free(self) -> None:
        for path in self._fills:
            path.unlink(missing_ok=True)
        self._fills.clear()

    def keep_copy(self, dest: Path) -> Path:
        """Copy the work dir out of the file systems before they go (the checker reads the copy)."""
        shutil.copytree(self.work_dir, dest, symlinks=True, ignore=shutil.ignore_patterns(FILL_NAME, "appendonlydir"))
        return dest

    def unmount(self) -> None:
        self.free()
        for path in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self.mounted.clear()
