"""The paper's Table 1 on our offline datasets: train, export and score every arm, then write
``docs/results.md``.

    python -m experiments.table1 --scale cpu-small --datasets landscapes --schemes pix2pix \\
        --arms baseline,binary-soft,binary-hard --seeds 0,1 --segmenter deeplab-voc

Each (dataset, scheme, arm, seed) gets a run directory under ``--root``: trained with
``advseg-train``, exported with ``advseg-export`` (fp32), scored with ``advseg-eval colour`` on the
test split (photo -> HED sketch -> colour through the SDK pipeline; KID against the photos). Every
step runs through the public commands, so the table measures what a user gets; finished steps are
skipped (training resumes when interrupted), so a second invocation trains nothing. A run
directory keeps ``table.json`` (commands, settings, seconds per step) and belongs to one set of
settings: other settings over an existing root are refused.

Modules: :mod:`~experiments.table1.grid` (what is run), :mod:`~experiments.table1.runner`
(running the cells), :mod:`~experiments.table1.report` (``results.md``), :mod:`~experiments.table1.cli`
(the command). This is an experiment, not part of the installed advseg packages: it runs from the
repository root (``scripts/reproduce_table.sh``; the tests put the root on ``sys.path``).
"""

from .grid import ARMS, PAPER_TABLE1, SCALES, SCHEMES, Arm, Cell, Grid, Scale, Settings
from .runner import RunRecord, run_table

__all__ = [
    "ARMS",
    "SCALES",
    "SCHEMES",
    "PAPER_TABLE1",
    "Scale",
    "Arm",
    "Cell",
    "Grid",
    "Settings",
    "RunRecord",
    "run_table",
]
