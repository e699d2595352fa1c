"""Every requirement file and every extra resolves for Windows x64, macOS arm64 and Linux x86-64.

pip's own resolver, in dry-run mode (nothing is installed), against the package index a lab
would use (PyPI, or ``PIP_INDEX_URL`` where CI sets a mirror), for CPython 3.11 and the target's
wheel tags (``--only-binary=:all: --platform ... --python-version 3.11 --implementation cp``).
This machine's own pip configuration (``/etc/xdg/pip``: local wheels, a constraint) is left out:
it describes this machine, not a lab's.

Five things done here, in the child process that runs pip:

- pip evaluates environment markers (``; sys_platform != "darwin"``, torch's
  ``platform_system == "Linux"``) against the machine it runs on, not the ``--platform`` asked
  for. The child replaces pip's marker environment (its vendored
  ``packaging.markers.default_environment``) with the target's, so each target's markers decide
  as they would there.
- pip 23 checks each wheel's tags against the list of the target's tags (Linux's many
  manylinux tags make it a third of the resolution's time); the child gives it a set of the
  same tags, the same answer.
- pip 23 parses every file of a project's page (torch's and the NVIDIA libraries' pages list
  thousands, for every platform and Python) before it rejects the wheels whose tags the target
  lacks and, with ``--only-binary=:all:``, every file that is not a wheel. The child drops those
  files from the page's JSON first, by pip's own tests: the same candidates, the same choice
  (the seven resolutions' reports compared whole: 229 -> 145 CPU seconds).
- pip 23 parses the same version strings hundreds of thousands of times, each dependency's
  requirement string each time it reads it, and this machine's tags for every candidate; the
  child parses each text once and skips pip's search for legacy versions to warn about (the
  same reports byte for byte: 10.6 -> 7.3 CPU seconds a resolution).
- This index serves neither PEP 658 metadata files nor range requests, so pip fetches each whole
  wheel to read its ``METADATA`` (gigabytes for torch's CUDA libraries), and pip 23's dry run
  downloads every chosen wheel again at the end. The child keeps each wheel's ``METADATA`` in a
  cache keyed by the wheel's sha256 from the index (the file is checked against it when first
  fetched), as PEP 658 serves it, and skips the final downloads. The resolution itself is pip's,
  unchanged. Where pip's internals differ (another pip), the child runs plain pip.

Per target, two resolutions, CPU and GPU, each of every requirement file together
(``requirements-cpu.txt`` or ``requirements-gpu.txt``, which include ``requirements.txt``, with
``requirements-dev.txt`` and so ``requirements-openvino.txt``) and of the project's wheel with
every extra (``[cpu,all,openvino]`` or ``[gpu,all,openvino]``). One resolution of the union shows
each part resolves alone (its part of the solution is a solution), and that no extra brings the
other ONNX Runtime build (it would be in the union). Then exactly one build is chosen.

The oldest macOS every pin supports is named in docs/install.md: it resolves there and not on
the macOS before it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from deeplabstream.core.optional import missing_extra
from tests.support.paths import PROJECT_ROOT

OLDEST_MACOS = 14  # docs/install.md; every pin has a macosx_14_0_arm64 (or older) wheel
OLDEST_GLIBC = 31  # Linux: manylinux_2_31 (pypylon), Ubuntu 20.04 and Debian 11 or newer
BUILDS = ("onnxruntime", "onnxruntime-gpu")


@dataclass(frozen=True)
class Target:
    """A platform a lab runs: its marker values and the wheel tags pip may take for it."""

    name: str
    markers: dict[str, str]
    platforms: tuple[str, ...]


_PYTHON_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.9",
    "implementation_name": "cpython",
    "implementation_version": "3.11.9",
    "platform_python_implementation": "CPython",
}


def windows() -> Target:
    markers = {
        "os_name": "nt", "sys_platform": "win32", "platform_system": "Windows",
        "platform_machine": "AMD64", "platform_release": "10", "platform_version": "10.0.19045",
    }  # fmt: skip
    return Target("windows", {**_PYTHON_MARKERS, **markers}, ("win_amd64",))


def macos(major: int = OLDEST_MACOS) -> Target:
    markers = {
        "os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
        "platform_machine": "arm64", "platform_release": f"{major + 9}.0.0",
        "platform_version": f"Darwin Kernel Version {major + 9}.0.0",
    }  # fmt: skip
    # pip takes every macOS tag up to this one for arm64 (and universal2) from a single --platform
    return Target(f"macos{major}", {**_PYTHON_MARKERS, **markers}, (f"macosx_{major}_0_arm64",))


def linux() -> Target:
    markers = {
        "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
        "platform_machine": "x86_64", "platform_release": "6.1.0", "platform_version": "#1 SMP",
    }  # fmt: skip
    # pip 23 does not widen a manylinux_2_x tag to the older ones: each is listed
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(OLDEST_GLIBC, 4, -1)]
    tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    return Target("linux", {**_PYTHON_MARKERS, **markers}, tuple(tags))


TARGETS = (windows(), macos(), linux())


# -- the child process: pip for another platform ---------------------------------------------


def run_pip_for_target() -> None:
    """Entry of the child: ``argv[1]`` the target's markers (JSON), ``argv[2]`` the metadata
    cache folder, the rest pip's arguments."""
    markers, cache, pip_arguments = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    from pip._internal.cli.main import main
    from pip._vendor.packaging import markers as pip_markers

    running_here = pip_markers.default_environment
    pip_markers.default_environment = lambda: {**running_here(), **markers}
    _check_wheel_tags_against_a_set()
    _drop_the_files_the_target_cannot_take()
    _parse_each_text_once()
    _serve_wheel_metadata_from(cache)
    sys.exit(main(pip_arguments))


def _check_wheel_tags_against_a_set() -> None:
    """Let pip check a wheel's tags against a set of the target's tags, not their list.

    pip 23 asks, for every file of every index page (150,000 here), whether the wheel's tags
    are disjoint from the list of the target's tags: hundreds for Linux's many manylinux tags,
    each hashed again on every call, a third of the resolution's CPU time. Disjointness does not
    depend on the order, so a set of the same tags gives the same answer (newer pips pass one).
    """
    try:
        from pip._internal.models.wheel import Wheel
    except ImportError:
        return  # another pip: plain pip
    if not hasattr(Wheel, "supported"):
        return
    as_sets: dict[int, tuple[object, frozenset]] = {}

    def supported(self: Any, tags: Any) -> bool:
        known = as_sets.get(id(tags))
        if known is None or known[0] is not tags:  # the list itself is kept: its id stays its
            known = as_sets[id(tags)] = (tags, frozenset(tags))
        return not self.file_tags.isdisjoint(known[1])

    Wheel.supported = supported  # type: ignore[method-assign]


def _drop_the_files_the_target_cannot_take() -> None:
    """Leave out of each index page the files pip would reject for the target, before parsing.

    pip 23 makes a ``Link`` of every file of a project's page (torch's and the NVIDIA
    libraries' pages list thousands, for every platform and Python) and only then rejects those
    whose wheel tags the target does not support, or that are not wheels where only wheels may
    be taken (``--only-binary=:all:``): parsing them was half of a resolution's CPU time. The
    page's JSON is read here and those files dropped by pip's own tests (its ``Wheel`` file
    tags against the target's supported tags; its allowed formats), so the candidates pip
    evaluates, and its choice, are the same. An HTML page, or another pip, is left as it is.
    """
    try:
        from pip._internal.index import package_finder
        from pip._internal.models.wheel import Wheel
        from pip._internal.utils.filetypes import WHEEL_EXTENSION
    except ImportError:
        return
    finder_class = package_finder.PackageFinder
    if not hasattr(finder_class, "process_project_url") or not hasattr(
        package_finder, "parse_links"
    ):
        return
    plain_process, plain_parse = finder_class.process_project_url, package_finder.parse_links
    wanted: list[tuple[frozenset[Any], bool]] = []  # the page being read: (tags, wheels only)

    def takes(filename: str) -> bool:
        tags, wheels_only = wanted[-1]
        if not filename.endswith(WHEEL_EXTENSION):
            return not wheels_only
        try:
            return not Wheel(filename).file_tags.isdisjoint(tags)
        except Exception:  # an invalid name: pip's own evaluation says so
            return True

    def parse_links(page: Any) -> Any:
        if wanted and page.content_type.lower().startswith("application/vnd.pypi.simple.v1+json"):
            data = json.loads(page.content)
            data["files"] = [f for f in data.get("files", []) if takes(f.get("filename", ""))]
            page.content = json.dumps(data).encode()
        return plain_parse(page)

    def process_project_url(self: Any, project_url: Any, link_evaluator: Any) -> Any:
        target = getattr(link_evaluator, "_target_python", None)
        formats = getattr(link_evaluator, "_formats", None)
        if target is None or formats is None:
            return plain_process(self, project_url, link_evaluator)
        wanted.append((frozenset(target.get_tags()), "source" not in formats))
        try:
            return plain_process(self, project_url, link_evaluator)
        finally:
            wanted.pop()

    finder_class.process_project_url = process_project_url  # type: ignore[method-assign]
    package_finder.parse_links = parse_links  # type: ignore[assignment]


def _parse_each_text_once() -> None:
    """Let pip parse each version, requirement and tag list once, not at every comparison.

    pip 23's resolver builds a ``Version`` from the same strings hundreds of thousands of times
    (each specifier's own version again at every comparison), parses each dependency's
    requirement string with pyparsing each time it reads it, and asks for this machine's tags
    (a failing import of ``_manylinux`` per manylinux tag) for every candidate: together about
    half of a profiled resolution's time. The same text gives the same parse, so each is parsed
    once; each object pip gets is its own, its sets and specifiers copied (only a requirement's
    marker, which pip only evaluates, and the versions' tuples are shared). After the
    resolution, pip's warnings about legacy versions are not looked for (a dry run prints
    nothing here). Another pip: left as it is.
    """
    try:
        from pip._internal.req.req_set import RequirementSet
        from pip._internal.resolution.resolvelib import factory
        from pip._internal.utils import compatibility_tags
        from pip._vendor.packaging import requirements, version
    except ImportError:
        return
    needed = (
        hasattr(compatibility_tags, "get_supported")
        and hasattr(factory, "get_supported")
        and hasattr(RequirementSet, "warn_legacy_versions_and_specifiers")
    )
    if not needed:
        return
    plain_version, versions = version.Version.__init__, {}

    def parse_version(self: Any, text: str) -> None:
        known = versions.get(text)
        if known is None:
            plain_version(self, text)
            versions[text] = (self._version, self._key)  # tuples: nothing to share
        else:
            self._version, self._key = known

    plain_requirement, parsed = requirements.Requirement.__init__, {}

    def parse_requirement(self: Any, text: str) -> None:
        known = parsed.get(text)
        if known is None:
            plain_requirement(self, text)
            parsed[text] = (self.name, self.url, frozenset(self.extras), str(self.specifier),
                            self.marker)  # fmt: skip
            return
        self.name, self.url, extras, specifier, self.marker = known
        self.extras = set(extras)
        self.specifier = requirements.SpecifierSet(specifier)

    plain_supported, supported = compatibility_tags.get_supported, {}

    def get_supported(
        version: Any = None, platforms: Any = None, impl: Any = None, abis: Any = None
    ) -> list[Any]:
        key = (version, tuple(platforms or ()), impl, tuple(abis or ()))
        if key not in supported:
            supported[key] = plain_supported(version, platforms, impl, abis)
        return list(supported[key])

    version.Version.__init__ = parse_version  # type: ignore[method-assign]
    requirements.Requirement.__init__ = parse_requirement  # type: ignore[method-assign]
    compatibility_tags.get_supported = get_supported
    factory.get_supported = get_supported  # type: ignore[attr-defined]
    RequirementSet.warn_legacy_versions_and_specifiers = (  # type: ignore[method-assign]
        lambda self: None
    )


def _serve_wheel_metadata_from(cache: Path) -> None:
    """Let pip read a remote wheel's METADATA from ``cache`` (keyed by the wheel's sha256)."""
    try:
        from pip._internal.metadata import get_metadata_distribution
        from pip._internal.operations.prepare import RequirementPreparer
        from pip._internal.req.req_install import InstallRequirement
        from pip._internal.utils.direct_url_helpers import direct_url_from_link
    except ImportError:
        return  # another pip: plain pip, slower here
    needed = ("_fetch_metadata_only", "prepare_linked_requirements_more")
    if not all(hasattr(RequirementPreparer, name) for name in needed):
        return
    plain_get_dist = InstallRequirement.get_dist

    def fetch_metadata_only(self: Any, req: Any) -> Any:
        link = req.link
        if link.is_file or not link.is_wheel or link.hash_name != "sha256" or req.req is None:
            return None
        file = cache / f"{link.hash}.METADATA"
        if not file.exists():
            _cache_wheel_metadata(self._session, link.url_without_fragment, link.hash, file)
        dist = get_metadata_distribution(file.read_bytes(), link.filename, req.req.name)
        req.download_info = direct_url_from_link(link)
        req.metadata_only_dist = dist
        return dist

    def get_dist(self: Any) -> Any:
        dist = getattr(self, "metadata_only_dist", None)
        return dist if dist is not None else plain_get_dist(self)

    RequirementPreparer._fetch_metadata_only = fetch_metadata_only  # type: ignore[method-assign]
    # a dry run installs nothing: the chosen wheels need not be downloaded after the resolution
    RequirementPreparer.prepare_linked_requirements_more = (  # type: ignore[method-assign]
        lambda self, reqs, parallel_builds=False: None
    )
    InstallRequirement.get_dist = get_dist  # type: ignore[method-assign]


def _cache_wheel_metadata(session: Any, url: str, sha256: str, file: Path) -> None:
    """Fetch the wheel at ``url``, check it against ``sha256``, keep its METADATA in ``file``."""
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as wheel:
        response = session.get(url, stream=True)
        response.raise_for_status()
        for chunk in response.iter_content(chunk_size=1 << 20):
            digest.update(chunk)
            wheel.write(chunk)
        if digest.hexdigest() != sha256:
            raise RuntimeError(f"{url}: sha256 {digest.hexdigest()}, the index says {sha256}")
        with zipfile.ZipFile(wheel) as archive:
            (name,) = [
                n for n in archive.namelist()
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]  # fmt: skip
            contents = archive.read(name)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(contents)
    partial.replace(file)  # whole or absent, with several children writing


# -- the test side ---------------------------------------------------------------------------


def index_url() -> str:
    """The index a lab's pip uses: ``PIP_INDEX_URL`` (a mirror CI sets) or PyPI."""
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/"


def _metadata_cache() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("deeplabstream")) / "wheel-metadata"


def resolve(target: Target, requirements: list[str], work: Path) -> dict[str, str]:
    """Return what pip would install for ``target``: distribution name -> version."""
    child_code = (
        f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r}); "
        "from tests.integration.test_install_resolution import run_pip_for_target; "
        "run_pip_for_target()"
    )
    pip_arguments = [
        "install", "--dry-run", "--quiet", "--report", "-",
        "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
        "--target", str(work / "target"), "--index-url", index_url(),
        *(part for tag in target.platforms for part in ("--platform", tag)),
        *requirements,
    ]  # fmt: skip
    # This machine's pip configuration and its local wheels are not a lab's; the certificate
    # and the proxies of the environment stay.
    environment = {
        key: value for key, value in os.environ.items()
        if key not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX")
    }  # fmt: skip
    environment["PIP_CONFIG_FILE"] = os.devnull  # no configuration file at all
    result = subprocess.run(
        [sys.executable, "-c", child_code, json.dumps(target.markers), str(_metadata_cache()),
         *pip_arguments],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        raise ResolutionError(target.name, "\n".join(errors) or result.stderr[-3000:])
    report = json.loads(result.stdout)
    return {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in report["install"]
    }


class ResolutionError(Exception):
    """pip found no set of wheels for a target; the message holds pip's errors."""

    def __init__(self, target: str, errors: str) -> None:
        super().__init__(f"{target}: {errors}")
        self.errors = errors


@pytest.fixture(scope="module")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once: its metadata holds the extras pip resolves."""
    folder = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(folder), str(PROJECT_ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = folder.glob("deeplabstream-*.whl")
    return wheel


def _index_reachable() -> str | None:
    """Return why the index cannot be reached, or None."""
    try:
        with urllib.request.urlopen(index_url() + "pip/", timeout=20) as response:
            response.read(1)
    except OSError as error:
        return f"the package index {index_url()} is unreachable ({error})"
    return None


@dataclass(frozen=True)
class Resolutions:
    """Each (target, variant)'s resolution, or its error, and the seconds all of them took."""

    chosen: dict[tuple[str, str], dict[str, str] | ResolutionError]
    seconds: float


@pytest.fixture(scope="module")
def resolutions(project_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Resolutions:
    unreachable = _index_reachable()
    if unreachable is not None:
        pytest.skip(unreachable)
    variants = {
        "cpu": ["-r", "requirements-cpu.txt", "-r", "requirements-dev.txt",
                f"{project_wheel}[cpu,all,openvino]"],
        "gpu": ["-r", "requirements-gpu.txt", "-r", "requirements-dev.txt",
                f"{project_wheel}[gpu,all,openvino]"],
    }  # fmt: skip
    jobs: dict[tuple[str, str], Callable[[], dict[str, str]]] = {}
    for target in TARGETS:
        for variant, requirements in variants.items():
            work = tmp_path_factory.mktemp(f"{target.name}-{variant}")
            jobs[(target.name, variant)] = _job(target, requirements, work)
    # One before the rest (macOS before it, no wheels: quick) would not warm anything; the
    # jobs wait on the network, so all of them run at once.
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {key: pool.submit(_outcome, job) for key, job in jobs.items()}
        chosen = {key: future.result() for key, future in futures.items()}
    seconds = time.perf_counter() - started
    print(f"\n{len(jobs)} resolutions took {seconds:.0f} s")
    return Resolutions(chosen, seconds)


def _job(target: Target, requirements: list[str], work: Path) -> Callable[[], dict[str, str]]:
    return lambda: resolve(target, requirements, work)


def _outcome(job: Callable[[], dict[str, str]]) -> dict[str, str] | ResolutionError:
    try:
        return job()
    except ResolutionError as error:
        return error


def _chosen(resolutions: Resolutions, target: str, variant: str) -> dict[str, str]:
    outcome = resolutions.chosen[(target, variant)]
    if isinstance(outcome, ResolutionError):
        pytest.fail(f"{variant} install does not resolve for {outcome}")
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize("target", [target.name for target in TARGETS])
def test_the_cpu_install_resolves_with_the_cpu_build_only(
    resolutions: Resolutions, target: str
) -> None:
    chosen = _chosen(resolutions, target, "cpu")
    assert [build for build in BUILDS if build in chosen] == ["onnxruntime"]
    assert chosen["onnxruntime"] == "1.31.1"  # requirements-cpu.txt's pin
    assert chosen["deeplabstream"] and chosen["torch"] and chosen["pypylon"]


@pytest.mark.slow
@pytest.mark.parametrize("target", [target.name for target in TARGETS])
def test_the_gpu_install_resolves_with_the_gpu_build_only(
    resolutions: Resolutions, target: str
) -> None:
    chosen = _chosen(resolutions, target, "gpu")
    builds = [build for build in BUILDS if build in chosen]
    if target.startswith("macos"):  # no NVIDIA build: the standard one, with CoreML
        assert builds == ["onnxruntime"]
    else:
        assert builds == ["onnxruntime-gpu"]
        assert chosen["onnxruntime-gpu"] == "1.31.1"
        # its extras cuda and cudnn: the libraries as wheels, for onnxruntime.preload_dlls
        assert "nvidia-cuda-runtime" in chosen and "nvidia-cudnn-cu13" in chosen


@pytest.mark.slow
@pytest.mark.parametrize("target", [target.name for target in TARGETS])
def test_what_cannot_exist_on_macos_is_left_out_there_only(
    resolutions: Resolutions, target: str
) -> None:
    chosen = _chosen(resolutions, target, "cpu")
    on_macos = target.startswith("macos")
    for left_out_on_macos in ("pyrealsense2", "nidaqmx"):
        assert (left_out_on_macos in chosen) is not on_macos, left_out_on_macos


@pytest.mark.slow
def test_the_macos_before_the_oldest_named_cannot_take_the_pins(
    resolutions: Resolutions, tmp_path: Path
) -> None:
    _chosen(resolutions, macos().name, "cpu")  # the oldest named takes them
    with pytest.raises(ResolutionError) as older:
        resolve(macos(OLDEST_MACOS - 1), ["-r", "requirements-cpu.txt"], tmp_path)
    assert "No matching distribution" in older.value.errors


# -- without the index: the files, the set-up script and the messages --------------------------


def _requirement_lines(file: Path) -> Iterator[Requirement]:
    for line in file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            yield Requirement(line)


def _builds_in(file: str, target: Target) -> list[str]:
    """The ONNX Runtime builds ``file`` (and the files it includes) asks for on ``target``."""
    found: list[str] = []
    for path in (PROJECT_ROOT / file, PROJECT_ROOT / "requirements.txt"):
        for requirement in _requirement_lines(path):
            applies = requirement.marker is None or requirement.marker.evaluate(target.markers)
            if applies and requirement.name in BUILDS:
                found.append(requirement.name)
    return found


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_each_requirement_file_asks_for_one_onnxruntime_build(target: Target) -> None:
    assert _builds_in("requirements-cpu.txt", target) == ["onnxruntime"]
    expected = ["onnxruntime"] if target.name.startswith("macos") else ["onnxruntime-gpu"]
    assert _builds_in("requirements-gpu.txt", target) == expected
    shared = [r.name for r in _requirement_lines(PROJECT_ROOT / "requirements-dev.txt")]
    assert not set(shared) & set(BUILDS)  # the test tools take the build the set-up chose


def test_the_base_dependencies_hold_no_onnxruntime_build() -> None:
    import tomllib

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    base = [Requirement(text).name for text in project["project"]["dependencies"]]
    assert not set(base) & set(BUILDS)
    extras = project["project"]["optional-dependencies"]
    assert [Requirement(text).name for text in extras["cpu"]] == ["onnxruntime"]
    for extra, texts in extras.items():  # only cpu and gpu ask for a build
        if extra not in ("cpu", "gpu"):
            assert not {Requirement(text).name for text in texts} & set(BUILDS), extra


@pytest.fixture(scope="module")
def setup_script() -> ModuleType:
    """scripts/setup.py, imported as a module (its main does not run)."""
    spec = importlib.util.spec_from_file_location(
        "setup_script", PROJECT_ROOT / "scripts" / "setup.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_setup_script_uses_each_platforms_paths(setup_script: ModuleType) -> None:
    root = Path("/lab/DeepLabStream")
    assert setup_script.venv_python(root, "Windows") == root / ".venv" / "Scripts" / "python.exe"
    assert setup_script.venv_python(root, "Darwin") == root / ".venv" / "bin" / "python"
    windows_next = "\n".join(setup_script.next_commands("Windows", tests=True))
    assert r".venv\Scripts\python.exe app.py" in windows_next and "/bin/" not in windows_next
    assert ".venv/bin/python app.py" in "\n".join(setup_script.next_commands("Linux", tests=False))


def test_the_setup_script_installs_one_build_per_choice(setup_script: ModuleType) -> None:
    assert setup_script.requirement_files(gpu=False, tests=True) == [
        "requirements-cpu.txt", "requirements-dev.txt",
    ]  # fmt: skip
    assert setup_script.requirement_files(gpu=True, tests=False) == ["requirements-gpu.txt"]
    assert setup_script.onnxruntime_build(True, "Windows") == "onnxruntime-gpu"
    assert setup_script.onnxruntime_build(True, "Darwin") == "onnxruntime"  # no NVIDIA build
    # the lines it reinstalls after removing the other build: the build's own, not the includes
    gpu_lines = setup_script.own_requirements(PROJECT_ROOT / "requirements-gpu.txt")
    assert {Requirement(line).name for line in gpu_lines} == set(BUILDS)
    assert setup_script.unsupported("Darwin", "x86_64") is not None  # Intel Macs: no wheels
    assert setup_script.unsupported("Darwin", "arm64") is None
    assert setup_script.unsupported("Windows", "AMD64") is None


def test_an_extra_missing_on_macos_says_it_is_not_available_there() -> None:
    for module, extra in (("pyrealsense2", "realsense"), ("nidaqmx", "nidaq")):
        error = ModuleNotFoundError(f"No module named {module!r}", name=module)
        on_macos = str(missing_extra(error, platform="darwin"))
        assert f"The extra {extra!r} is not available on macOS" in on_macos
        assert "pip install" not in on_macos  # it would install nothing there
        on_windows = str(missing_extra(error, platform="win32"))
        assert f'pip install "deeplabstream[{extra}]"' in on_windows
        assert "not available on macOS" in on_windows
    basler = str(missing_extra(ModuleNotFoundError("no", name="pypylon"), platform="darwin"))
    assert 'pip install "deeplabstream[basler]"' in basler and "not available" not in basler


def test_without_onnxruntime_the_message_names_both_builds() -> None:
    message = str(missing_extra(ModuleNotFoundError("no", name="onnxruntime.capi")))
    assert '"deeplabstream[cpu]"' in message and '"deeplabstream[gpu]"' in message
    assert "never both" in message


def test_the_macos_markers_agree_between_pyproject_and_requirements() -> None:
    import tomllib

    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]["optional-dependencies"]
    pins = {r.name: r for r in _requirement_lines(PROJECT_ROOT / "requirements.txt")}
    mac = Marker("sys_platform == 'darwin'")
    assert mac.evaluate(macos().markers) and not mac.evaluate(windows().markers)
    for extra in ("realsense", "nidaq"):
        (requirement,) = (Requirement(text) for text in extras[extra])
        assert requirement.marker is not None
        assert not requirement.marker.evaluate(macos().markers)
        assert requirement.marker.evaluate(windows().markers)
        assert requirement.marker.evaluate(linux().markers)
        pinned = pins[requirement.name].marker
        assert pinned is not None and str(pinned) == str(requirement.marker)


def test_the_setup_says_each_step_and_shows_what_it_runs_as_it_goes(tmp_path: Path) -> None:
    """Issue 63 #9: the set-up printed nothing for about 8 minutes after "creating .venv" (pip
    ran with --quiet). Each step is announced, its command shown, the command's own output
    follows as it comes (a real child process here), and the step is said done."""
    script = tmp_path / "says.py"
    script.write_text("print('Collecting numpy', flush=True)\n")
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys, importlib.util as u; s = u.spec_from_file_location('s', sys.argv[1]); "
         "m = u.module_from_spec(s); s.loader.exec_module(m); "
         "m.run_steps([m.Step('the pinned packages', ([sys.executable, sys.argv[2]],))])",
         str(PROJECT_ROOT / "scripts" / "setup.py"), str(script)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0] == "setup: step 1 of 1: the pinned packages"
    assert lines[1].startswith("setup:   $ ") and lines[1].endswith("says.py")
    assert lines[2] == "Collecting numpy"  # the command's own output, in its place
    assert lines[3].startswith("setup: step 1 of 1 done in ")
    # Every step of a real set-up, with the commands it would run: pip is never quiet.
    dry = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "setup.py"), "--tests", "--dry-run"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    announced = [line for line in dry.stdout.splitlines() if " step " in line]
    assert len(announced) >= 4 and announced[-2].endswith("editable (src/deeplabstream)")
    assert announced[-1].endswith("compiling the project's bytecode (src/deeplabstream)")
    # pip compiles on one core: its installs skip it, and one step compiles them on every core.
    installs = [line for line in dry.stdout.splitlines() if " -m pip install " in line]
    assert all("--no-compile" in line for line in installs if " -e ." not in line), installs
    assert announced[-3].endswith("compiling the installed packages' bytecode (every core)")
    assert "workers=0" in dry.stdout
    assert "pip install" in dry.stdout and "--quiet" not in dry.stdout
    assert "-r requirements-dev.txt" in dry.stdout
    assert "dry run: nothing was run" in dry.stdout
