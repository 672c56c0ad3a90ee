"""Official-code fixtures: every io file of every ``*_args.json`` must reproduce.

The list of cases comes from the JSON files themselves (their ``io`` entries), so a held-out set
with other widths, shapes and seeds runs through the same tests unchanged. Tolerances are the
fixtures README's: ``assert_close(atol=5e-5, rtol=1e-4)`` and relative norm <= 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixture_sets import COMMITTED, FixtureSet

from advseg_train import checkpoint_formats as checkpoints
from advseg_train.networks import (
    count_parameters,
    load_discriminator,
    load_generator,
    set_dropout,
)

ATOL, RTOL, REL_NORM = 5e-5, 1e-4, 1e-4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny convs on a shared 2-core box run far faster single-threaded (no OpenMP spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


OFFICIAL = FixtureSet("official")  # the same set conftest's ``official_fixtures_dir`` gives


def _fixture_names() -> list[str]:
    return sorted(p.name[: -len("_args.json")] for p in OFFICIAL.glob("*_args.json"))


def _io_cases() -> list[tuple[str, str]]:
    """Every io file of every fixture that this checkout holds (a subset may omit some)."""
    cases = []
    for name in _fixture_names():
        args = json.loads((OFFICIAL / f"{name}_args.json").read_text())
        cases += [(name, io["file"]) for io in args["io"] if (OFFICIAL / io["file"]).is_file()]
    return cases


def _twin_fixtures() -> list[str]:
    d = OFFICIAL

    def has_twin(name: str) -> bool:
        ios = json.loads((d / f"{name}_args.json").read_text())["io"]
        return any("shared_with" in io for io in ios)

    return [n for n in _fixture_names() if has_twin(n)]


FIXTURES = _fixture_names()
IO_CASES = _io_cases()
TWIN_FIXTURES = _twin_fixtures()


def test_fixtures_were_found(official_fixtures_dir: Path) -> None:
    assert FIXTURES, f"no *_args.json under {official_fixtures_dir}"
    assert IO_CASES, "no io entries in the fixtures' *_args.json"
    assert TWIN_FIXTURES, "expected a fixture sharing its io with a twin (the _inkeys file)"


def test_committed_subset_matches_its_checksums_and_budget() -> None:
    """The fixtures that travel with the repository are byte-identical to the official set
    (their SHA256SUMS lines are the original ones) and stay within 10 MB."""
    import hashlib

    total = 0
    for kind in ("official", "hed"):
        sums = (COMMITTED / kind / "SHA256SUMS").read_text().split("\n")
        listed = {line.split()[1]: line.split()[0] for line in sums if line.strip()}
        assert listed, f"empty SHA256SUMS in tests/fixtures/{kind}"
        for name, digest in listed.items():
            data = (COMMITTED / kind / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, f"{kind}/{name} differs from the official file"
        on_disk = {p.name for p in (COMMITTED / kind).iterdir()} - {"SHA256SUMS", "README.md"}
        assert on_disk == set(listed), f"unlisted files in tests/fixtures/{kind}: {on_disk - set(listed)}"
        total += sum(p.stat().st_size for p in (COMMITTED / kind).iterdir())
    assert total <= 10_000_000, f"committed fixtures are {total:,} bytes"


def _args(d: Path, name: str) -> dict:
    return json.loads((d / f"{name}_args.json").read_text())


def _is_discriminator(args: dict) -> bool:
    cls = args.get("official_class") or args.get("upstream_class") or ""
    return "Discriminator" in cls or "netD" in args


def _overrides(args: dict) -> dict:
    """What the weights cannot tell and changes the output: a discriminator's final sigmoid."""
    kwargs = args.get("class_kwargs", {})
    if _is_discriminator(args) and "use_sigmoid" in {**kwargs, **args}:
        return {"use_sigmoid": bool({**kwargs, **args}["use_sigmoid"])}
    return {}


def _load(d: Path, name: str):
    args = _args(d, name)
    loader = load_discriminator if _is_discriminator(args) else load_generator
    return loader(d / f"{name}_net.pth", **_overrides(args)), args


_NET_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def _cached_net(d: Path, name: str) -> torch.nn.Module:
    if (str(d), name) not in _NET_CACHE:
        _NET_CACHE[(str(d), name)] = _load(d, name)[0]
    return _NET_CACHE[(str(d), name)]


@pytest.mark.parametrize(("fixture", "io_file"), IO_CASES, ids=[f"{f}:{i}" for f, i in IO_CASES])
def test_io_reproduces(official_fixtures_dir: Path, fixture: str, io_file: str) -> None:
    net = _cached_net(official_fixtures_dir, fixture)
    ref = torch.load(official_fixtures_dir / io_file, map_location="cpu", weights_only=True)
    entry = next(io for io in _args(official_fixtures_dir, fixture)["io"] if io["file"] == io_file)
    assert ref["mode"] == entry["mode"]
    assert list(ref["input"].shape) == entry["input_shape"]

    if ref["mode"] == "eval":
        net.eval()
    elif ref["mode"] == "trainbn_nodropout":
        net.train()
        set_dropout(net, False)
    else:
        pytest.fail(f"unknown io mode {ref['mode']!r} in {io_file}")
    try:
        with torch.no_grad():
            y = net(ref["input"])
    finally:
        net.eval()

    expected = ref["output"]
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, atol=ATOL, rtol=RTOL)
    rel = ((y - expected).norm() / expected.norm()).item()
    assert rel <= REL_NORM, f"relative norm {rel:.3g} > {REL_NORM}"


@pytest.mark.parametrize("fixture", FIXTURES)
def test_architecture_inferred(official_fixtures_dir: Path, fixture: str) -> None:
    """The config read off the weights agrees with the factory arguments in the JSON."""
    net, args = _cached_net(official_fixtures_dir, fixture), _args(official_fixtures_dir, fixture)
    cfg = net.config
    kwargs = args.get("class_kwargs", {})
    width = kwargs.get("ngf", kwargs.get("ndf", args.get("ngf", args.get("ndf"))))
    assert (cfg.ndf if _is_discriminator(args) else cfg.ngf) == width
    if "input_nc" in args:
        assert cfg.input_nc == args["input_nc"]
    if "output_nc" in args:
        assert cfg.output_nc == args["output_nc"]
    if "netG" in args:
        assert cfg.arch == args["netG"]
    if "netD" in args:  # "basic" is "n_layers" with 3 layers; the weights name it "basic"
        expected_layers = 3 if args["netD"] == "basic" else args.get("n_layers_D", 3)
        assert cfg.effective_n_layers == expected_layers
        assert cfg.arch == args["netD"] or {cfg.arch, args["netD"]} == {"basic", "n_layers"}
    if "n_blocks" in kwargs or "n_blocks" in args:
        assert cfg.n_blocks == kwargs.get("n_blocks", args.get("n_blocks"))
    if "num_downs" in kwargs or "num_downs" in args:
        assert cfg.num_downs == kwargs.get("num_downs", args.get("num_downs"))
    norm_desc = str(kwargs.get("norm_layer", args.get("norm_layer", args.get("norm", ""))))
    assert cfg.norm == ("batch" if "BatchNorm" in norm_desc or norm_desc == "batch" else "instance")
    if cfg.arch.startswith("resnet") and "use_dropout" in args:
        assert cfg.use_dropout == args["use_dropout"]  # inferred from the key shift
    assert not net.training


@pytest.mark.parametrize("fixture", FIXTURES)
def test_parameter_count_matches_file(official_fixtures_dir: Path, fixture: str) -> None:
    """Our module holds exactly the file's parameters, minus AdvSegLoss's unused fc branch."""
    net, args = _cached_net(official_fixtures_dir, fixture), _args(official_fixtures_dir, fixture)
    raw = torch.load(official_fixtures_dir / f"{fixture}_net.pth", weights_only=True)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    fc_params = sum(
        v.numel() for k, v in raw.items() if k.startswith(("model_fc.", "model_fc_prep.")) and not k.endswith(buffers)
    )
    n_params = args["state_dict"].get("n_params")
    twins = [io["shared_with"] for io in args["io"] if "shared_with" in io]
    if n_params is None and twins:  # the _inkeys file: same weights as its plain twin
        twin = twins[0].removesuffix("_net.pth")
        n_params = _args(official_fixtures_dir, twin)["state_dict"]["n_params"]
    assert n_params is not None, f"{fixture}_args.json records no n_params"
    assert count_parameters(net) == n_params - fc_params
    assert not any(n.startswith("model_fc") for n, _ in net.named_modules())


@pytest.mark.parametrize("fixture", TWIN_FIXTURES)
def test_shared_io_twin_loads_to_identical_tensors(official_fixtures_dir: Path, fixture: str) -> None:
    """A file that shares its io with another (the ``_inkeys`` one) must clean up to exactly
    that file's state dict: same keys, same order, same tensors."""
    args = _args(official_fixtures_dir, fixture)
    twins = {io["shared_with"] for io in args["io"] if "shared_with" in io}
    raw = torch.load(official_fixtures_dir / f"{fixture}_net.pth", weights_only=True)
    cleaned, dropped = checkpoints.drop_instance_norm_buffers(raw)
    if "instance_norm_buffer_keys" in args:
        assert sorted(dropped) == sorted(args["instance_norm_buffer_keys"])
    if "n_instance_norm_buffer_keys" in args:
        assert len(dropped) == args["n_instance_norm_buffer_keys"]
    if _is_discriminator(args):
        read, loader = checkpoints.discriminator_state_and_config, load_discriminator
    else:
        read, loader = checkpoints.generator_state_and_config, load_generator
    _, ours, _ = read(official_fixtures_dir / f"{fixture}_net.pth")
    for twin in twins:
        plain = torch.load(official_fixtures_dir / twin, weights_only=True)
        assert list(cleaned) == list(plain)
        for k in plain:
            assert torch.equal(cleaned[k], plain[k]), k
        _, plain_ours, _ = read(official_fixtures_dir / twin)
        assert list(ours) == list(plain_ours)
        for k in plain_ours:
            assert torch.equal(ours[k], plain_ours[k]), k
        twin_net = loader(official_fixtures_dir / twin, **_overrides(args))
        net = _cached_net(official_fixtures_dir, fixture)
        assert twin_net.config == net.config
        for (ka, va), (kb, vb) in zip(net.state_dict().items(), twin_net.state_dict().items(), strict=True):
            assert ka == kb and torch.equal(va, vb)


def test_plain_strict_load_of_inkeys_file_would_fail(official_fixtures_dir: Path) -> None:
    """Why the loader strips explicitly: the raw old-upstream file does not load strictly."""
    candidates = [n for n in FIXTURES if "instance_norm_buffer_keys" in _args(official_fixtures_dir, n)]
    if not candidates:
        pytest.skip("no fixture with InstanceNorm buffers")
    name = candidates[0]
    raw = torch.load(official_fixtures_dir / f"{name}_net.pth", weights_only=True)
    net = load_generator(official_fixtures_dir / f"{name}_net.pth")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        net.load_state_dict(raw, strict=True)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_seeded_build_reproduces_official_init(official_fixtures_dir: Path, fixture: str) -> None:
    """``torch.manual_seed(seed)`` + our build + official init gives the file's parameters, bit
    for bit, wherever the official class builds no extra modules (AdvSegLoss's ResnetGenerator
    draws numbers for its unused fc branch, so it is skipped)."""
    from advseg_train.networks import build_discriminator, build_generator

    net, args = _cached_net(official_fixtures_dir, fixture), _args(official_fixtures_dir, fixture)
    if getattr(net, "source_layout", "") == "advsegloss_resnet_split":
        pytest.skip("AdvSegLoss ResnetGenerator draws init numbers for its unused fc branch")
    if "seed_torch_manual_seed" not in args or args.get("init_type", "normal") != "normal":
        pytest.skip("no seed / non-default init recorded")
    build = build_discriminator if _is_discriminator(args) else build_generator
    torch.manual_seed(args["seed_torch_manual_seed"])
    fresh = build(net.config, init_type="normal", init_gain=args.get("init_gain", 0.02))
    loaded = dict(net.named_parameters())
    for name, p in fresh.named_parameters():
        assert torch.equal(p, loaded[name]), name
