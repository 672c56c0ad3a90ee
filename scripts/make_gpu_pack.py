#!/usr/bin/env python3
"""Build the asset pack the GPU check carries (CPU side; see scripts/gpu_session.sh).

    .venv/bin/python scripts/make_gpu_pack.py [-o gpu-pack] [--photos 34] [--budget-mb 40]

Writes gpu-pack/ (ignored by git): real photos, their HED sketches computed here, the HED
weights (fp16), the wheels the pack's segmenters need, and manifest.json (what is in it, what was
left out and why). Then, on the GPU machine:

    command:   bash scripts/gpu_session.sh
    carry:     ["gpu-pack"]
    timeout_s: 540
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: scripts.gpu is not installed

from scripts.gpu.pack import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
