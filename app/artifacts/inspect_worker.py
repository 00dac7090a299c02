"""Child process that checks an unpacked model under a memory limit (see `validation`).

Usage: python -m app.artifacts.inspect_worker FOLDER RESULT_JSON MAX_CONFIG_BYTES MAX_LABELS
MEMORY_BYTES. The memory limit is set before transformers or torch is imported, so whatever a
hostile config makes them build counts against it; the parent enforces the time limit.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    folder, result_path, max_config_bytes, max_labels, memory_bytes = argv
    limit = int(memory_bytes)
    # RLIMIT_DATA counts heap and anonymous mappings (what a hostile config makes Python and
    # torch allocate) but not shared libraries mapped from disk: a CUDA build of torch maps
    # gigabytes of those, which RLIMIT_AS would count against the budget before any work.
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from app.artifacts.errors import ArtifactRejected
    from app.artifacts.validation import inspect_model_folder

    try:
        meta = inspect_model_folder(
            Path(folder), max_config_bytes=int(max_config_bytes), max_labels=int(max_labels)
        )
        result: dict = {"meta": meta}
    except ArtifactRejected as exc:
        result = {"rejected": str(exc)}
    except MemoryError:
        result = {
            "rejected": f"checking the model needed more than {limit} bytes of memory "
            "(LEAKGATE_INSPECT_MEMORY_BYTES); config.json describes a larger model than allowed"
        }
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
