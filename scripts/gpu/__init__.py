"""The GPU check: a time-boxed driver for a GPU machine (``session``), the asset pack it carries
(``pack``), what it runs (``profile``) and its report (``report``). A development tool, not part of
the installed advseg packages: run from the repository root (``scripts/gpu_session.sh``,
``scripts/make_gpu_pack.py``)."""
