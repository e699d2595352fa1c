"""Several animals from DeepLabCut 3.0's bottom-up part-affinity-field models, as DeepLabCut does.

Design: docs/pose-internals.md, "pose.decoding.dlc_assembly".
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from deeplabstream.core.assignment import linear_sum_assignment
from deeplabstream.pose.decoding.dlc_identity import DlcIdentitySettings, identify
from deeplabstream.pose.decoding.graph_outputs import named_outputs
from deeplabstream.pose.model import Decoded, Decoder, ModelDescription, ModelError, decoding_of

#: The outputs of the graph, in order.
OUTPUT_NAMES = ("peaks", "locref", "pafs")
#: The fourth output of a model with an identity head (:mod:`pose.decoding.dlc_identity`).
IDENTITY_OUTPUT = "identity"


@dataclass(frozen=True)
class DlcAssemblySettings:
    """DeepLabCut's ``PartAffinityFieldPredictor`` and ``Assembler`` settings of one model."""

    graph: tuple[tuple[int, int], ...]
    edges_to_keep: tuple[int, ...]
    individuals: int
    stride: float
    min_affinity: float = 0.05
    pcutoff: float = 0.1
    min_n_links: int = 2
    max_overlap: float = 0.8
    peak_threshold: float = 0.01
    line_points: int = 10
    decimals: int = 3
    clip_scores: bool = False
    identity: DlcIdentitySettings | None = None

    def __post_init__(self) -> None:
        """Check what the export's config gave."""
        if not self.graph or any(e < 0 or e >= len(self.graph) for e in self.edges_to_keep):
            raise ModelError(
                f"PAF edges to keep {list(self.edges_to_keep)} do not index the graph of "
                f"{len(self.graph)} edges"
            )
        if self.individuals < 1:
            raise ModelError(f"a model of {self.individuals} individuals")


# --- peaks and edge costs (DeepLabCut's PartAffinityFieldPredictor) ---------------------------


@dataclass
class FramePeaks:
    """One frame's peaks: heatmap cells, input-pixel positions and likelihoods."""

    parts: np.ndarray  # (M,) keypoint index
    rows: np.ndarray  # (M,) heatmap row
    cols: np.ndarray  # (M,) heatmap column
    xy: np.ndarray  # (M, 2) float32 input pixels
    likelihood: np.ndarray  # (M,) float32


def find_peaks(peaks: np.ndarray, locref: np.ndarray, settings: DlcAssemblySettings) -> FramePeaks:
    """Return one frame's peaks from its ``peaks`` (K, h, w) and ``locref`` (2K, h, w) maps."""
    parts, rows, cols = np.nonzero(peaks >= np.float32(settings.peak_threshold))
    stride = np.float32(settings.stride)
    half = np.float32(stride // 2)  # DeepLabCut adds stride // 2 (a float: 2.0 for 4.0)
    offsets_x = locref[2 * parts, rows, cols].astype(np.float32)
    offsets_y = locref[2 * parts + 1, rows, cols].astype(np.float32)
    x = stride * cols.astype(np.float32) + half + offsets_x
    y = stride * rows.astype(np.float32) + half + offsets_y
    likelihood = peaks[parts, rows, cols].astype(np.float32)
    return FramePeaks(parts, rows, cols, np.stack((x, y), axis=1), likelihood)


def _sample_fractions(points: int) -> np.ndarray:
    """Return ``torch.linspace(0, 1, points)`` as DeepLabCut gets it: float64 values in float32."""
    # The last bit matters: points are truncated to integer cells, and a fraction one bit low
    # moves a point on an exact cell boundary to the cell before.
    return np.linspace(0.0, 1.0, points).astype(np.float32)


def pair_affinities(
    pafs: np.ndarray,
    found: FramePeaks,
    edge: int,
    sources: np.ndarray,
    destinations: np.ndarray,
    settings: DlcAssemblySettings,
) -> np.ndarray:
    """Return the (len(sources), len(destinations)) affinities of ``edge`` between those peaks."""
    h, w = pafs.shape[-2:]
    pair_src = np.repeat(sources, len(destinations))
    pair_dst = np.tile(destinations, len(sources))
    def cells(peaks: np.ndarray) -> np.ndarray:  # only the pairs' peaks: a frame may hold many
        rows, cols = np.clip(found.rows[peaks], 0, h - 1), np.clip(found.cols[peaks], 0, w - 1)
        return np.stack((rows, cols), axis=1).astype(np.float32)

    start, end = cells(pair_src), cells(pair_dst)
    vector = end - start
    lengths = np.sqrt((vector * vector).sum(axis=1, dtype=np.float32)) + np.spacing(np.float32(1))
    t = _sample_fractions(settings.line_points)[None, :, None]
    points = (start[:, None, :] + t * vector[:, None, :]).astype(np.int32)
    points[..., 0] = np.clip(points[..., 0], 0, h - 1)
    points[..., 1] = np.clip(points[..., 1], 0, w - 1)
    field_x = pafs[2 * edge][points[..., 0], points[..., 1]]
    field_y = pafs[2 * edge + 1][points[..., 0], points[..., 1]]
    steps = np.diff(points[..., ::-1].astype(np.float32), axis=1)  # (col, row) steps
    norm = _norm(_trapezoid(field_x, steps[..., 0]), _trapezoid(field_y, steps[..., 1]))
    scale = np.float32(10**settings.decimals)
    affinity = np.round((norm / lengths) * scale) / scale
    return affinity.astype(np.float32).reshape(len(sources), len(destinations))


def edge_costs(
    pafs: np.ndarray, found: FramePeaks, settings: DlcAssemblySettings
) -> dict[int, np.ndarray]:
    """Return DeepLabCut's affinity matrix (``m1``) of every kept edge with peaks at both ends."""
    costs: dict[int, np.ndarray] = {}
    for edge in sorted(set(settings.edges_to_keep)):
        source, destination = settings.graph[edge]
        src = np.flatnonzero(found.parts == source)
        dst = np.flatnonzero(found.parts == destination)
        if len(src) and len(dst):
            costs[edge] = pair_affinities(pafs, found, edge, src, dst, settings)
    return costs


def _trapezoid(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Return ``torch.trapz`` along axis 1 in float32, summed in PyTorch's order."""
    # PyTorch's CPU reduction over a short middle axis (compared bit for bit): four running sums
    # of the terms i = j mod 4, then ((s0 + s1) + s2) + s3; the total halved. Affinities are
    # rounded to 3 decimals, so another order moves some across a rounding boundary.
    values = values.astype(np.float32)
    terms = (values[:, 1:] + values[:, :-1]) * steps
    sums = [np.zeros(len(values), np.float32) for _ in range(4)]
    for i in range(terms.shape[1]):
        sums[i % 4] = sums[i % 4] + terms[:, i]
    return (((sums[0] + sums[1]) + sums[2]) + sums[3]) / np.float32(2)


def _norm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return ``torch.norm`` of (x, y) pairs in float32, ``sqrt(fma(y, y, x * x))`` as on a CPU."""
    # The fused multiply-add rounds once: the float64 sum of the exact y * y and the float32
    # x * x, rounded to float32.
    squares = (y.astype(np.float64) ** 2 + (x * x).astype(np.float64)).astype(np.float32)
    return np.sqrt(squares)


# --- assembly (DeepLabCut's Assembler) ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Joint:
    """One peak: its position, likelihood, keypoint (label) and index among the frame's joints."""

    x: float
    y: float
    confidence: float
    label: int
    index: int
    peak: int  # its row in the frame's FramePeaks


@dataclass(eq=False)
class Link:
    """A candidate limb between two joints, with its PAF affinity (float32)."""

    first: Joint
    second: Joint
    affinity: np.float32

    @property
    def indices(self) -> tuple[int, int]:
        """The two joints' indices, source first."""
        return self.first.index, self.second.index


@dataclass(eq=False)
class Animal:
    """An assembly in progress: keypoints taken, links and their summed affinity."""

    size: int
    data: np.ndarray = field(init=False)
    affinity_sum: np.float32 | float = 0.0
    links: list[Link] = field(default_factory=list)
    visible: set[int] = field(default_factory=set)
    joints: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        """Start with every keypoint missing."""
        self.data = np.full((self.size, 3), np.nan)

    def __len__(self) -> int:
        """Keypoints taken."""
        return len(self.visible)

    def shares_keypoints_with(self, other: Animal) -> bool:
        """Return True when both hold a joint of the same keypoint (DeepLabCut's ``in``)."""
        return bool(self.visible.intersection(other.visible))

    def add_joint(self, joint: Joint) -> bool:
        """Take a joint unless its keypoint is taken already."""
        if joint.label in self.visible:
            return False
        self.data[joint.label] = joint.x, joint.y, joint.confidence
        self.visible.add(joint.label)
        self.joints.add(joint.index)
        return True

    def add_link(self, link: Link) -> bool:
        """Add a link; False when both joints were in already (only its affinity counts then)."""
        first, second = link.indices
        if first in self.joints and second in self.joints:
            self.affinity_sum += link.affinity
            self.links.append(link)
            return False
        if link.first.label in self.visible and link.second.label in self.visible:
            return False
        self.add_joint(link.first)
        self.add_joint(link.second)
        self.affinity_sum += link.affinity
        self.links.append(link)
        return True

    def merged_with(self, other: Animal) -> Animal:
        """Return a new assembly of both animals' links, in order (DeepLabCut's ``+``)."""
        merged = Animal(self.size)
        for link in self.links + other.links:
            merged.add_link(link)
        return merged

    def take_over(self, other: Animal) -> None:
        """Become ``other`` (DeepLabCut updates the object in place: others refer to it)."""
        self.data, self.affinity_sum, self.links = other.data, other.affinity_sum, other.links
        self.visible, self.joints = other.visible, other.joints

    def overlap_with(self, other: Animal) -> float:
        """Return the smaller share of either animal's keypoints inside both boxes' overlap."""
        mine, theirs = self._points(), other._points()
        low = np.maximum(mine.min(axis=0), theirs.min(axis=0))
        high = np.minimum(mine.max(axis=0), theirs.max(axis=0))
        if high[0] < low[0] or high[1] < low[1]:
            return 0.0
        inside_mine = np.all((mine >= low) & (mine <= high), axis=1).sum()
        inside_theirs = np.all((theirs >= low) & (theirs <= high), axis=1).sum()
        return float(min(inside_mine / len(self), inside_theirs / len(other)))

    def _points(self) -> np.ndarray:
        xy = self.data[:, :2]
        return xy[~np.isnan(xy).any(axis=1)]


def _joints(found: FramePeaks, keypoints: int) -> list[Joint]:
    """Return the frame's joints, keypoint by keypoint, numbered in that order."""
    # DeepLabCut skips a keypoint whose peaks' coordinates are all exactly 0 (np.any).
    joints: list[Joint] = []
    # Python floats of the float32 values, converted once: an untrained network's frame has
    # thousands of peaks.
    xs, ys, confidences = (
        found.xy[:, 0].tolist(),
        found.xy[:, 1].tolist(),
        found.likelihood.tolist(),
    )
    for label in range(keypoints):
        mine = np.flatnonzero(found.parts == label)
        if not np.any(found.xy[mine]):
            continue
        for i in mine.tolist():
            joints.append(Joint(xs[i], ys[i], confidences[i], label, len(joints), i))
    return joints


def best_links(
    by_label: dict[int, list[Joint]],
    pafs: np.ndarray,
    found: FramePeaks,
    settings: DlcAssemblySettings,
) -> list[Link]:
    """Per kept edge, the optimal pairing of its ends' most confident joints."""
    links: list[Link] = []
    n = settings.individuals
    kept: dict[int, list[int]] = {}  # per keypoint: edges share their ends

    def most_confident(label: int, joints: list[Joint]) -> list[int]:
        if label not in kept:
            kept[label] = _most_confident(joints, n, settings.pcutoff)
        return kept[label]

    for edge in settings.edges_to_keep:
        source, destination = settings.graph[edge]
        sources, destinations = by_label.get(source), by_label.get(destination)
        if not sources or not destinations:
            continue
        keep_s = most_confident(source, sources)
        keep_t = most_confident(destination, destinations)
        chosen = pair_affinities(
            pafs,
            found,
            edge,
            np.array([sources[i].peak for i in keep_s], np.int64),
            np.array([destinations[i].peak for i in keep_t], np.int64),
            settings,
        )
        chosen[np.isnan(chosen)] = 0
        for row, col in zip(*linear_sum_assignment(chosen, maximize=True), strict=True):
            weight = chosen[row, col]
            if weight >= settings.min_affinity:
                links.append(Link(sources[keep_s[row]], destinations[keep_t[col]], weight))
    return links


def _most_confident(joints: Sequence[Joint], n: int, cutoff: float) -> list[int]:
    """Return the ``n`` most confident joints (a stable sort) that reach ``cutoff``."""
    # heapq.nlargest is sorted(..., reverse=True)[:n], ties in order, without sorting them all
    ranked = heapq.nlargest(n, range(len(joints)), key=lambda i: joints[i].confidence)
    return [i for i in ranked if joints[i].confidence >= cutoff]


Lookup = dict[int, dict[int, Link]]


def _grow(animal: Animal, lookup: Lookup, assembled: set[int], keypoints: int) -> None:
    """Grow an animal along its best remaining links (a heap by affinity, ties by push order)."""
    stack: list[tuple[float, int, Link]] = []
    visited: set[tuple[int, int]] = set()
    counter = itertools.count()

    def push_links_of(joint: int) -> None:
        for other, link in lookup.setdefault(joint, {}).items():
            if other in animal.joints or link.indices in visited:
                continue
            heapq.heappush(stack, (-float(link.affinity), next(counter), link))
            visited.add(link.indices)

    for joint in animal.joints:
        push_links_of(joint)
    while stack and len(animal) < keypoints:
        _, _, best = heapq.heappop(stack)
        first, second = best.indices
        if first in animal.joints:
            new = second
        elif second in animal.joints:
            new = first
        else:
            continue
        if new in assembled:
            continue
        animal.add_link(best)
        push_links_of(new)


def _components(links: Sequence[Link]) -> list[list[int]]:
    """Return the connected joints of the links, in order of each component's first joint."""
    # The order is networkx's connected_components on a graph built from the links in order
    # (nodes visited in insertion order).
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    order: list[int] = []
    for link in links:
        for node in link.indices:
            if node not in parent:
                parent[node] = node
                order.append(node)
        a, b = root(link.indices[0]), root(link.indices[1])
        if a != b:
            parent[b] = a
    groups: dict[int, list[int]] = {}
    for node in order:
        groups.setdefault(root(node), []).append(node)
    return list(groups.values())


def build_animals(
    links: list[Link], keypoints: int, individuals: int
) -> tuple[list[Animal], set[int]]:
    """DeepLabCut's ``build_assemblies`` without its optional calibration (as it predicts)."""
    lookup: Lookup = {}
    for link in links:
        first, second = link.indices
        lookup.setdefault(first, {})[second] = link
        lookup.setdefault(second, {})[first] = link
    animals: list[Animal] = []
    assembled: set[int] = set()
    for component in _components(links):  # complete animals need no choice
        if len(component) != keypoints:
            continue
        members = set(component)
        animal = Animal(keypoints)
        for link in links:
            first, second = link.indices
            # DeepLabCut compares each link's (source, destination) with the sorted edge
            inside = first < second and first in members and second in members
            if inside and animal.add_link(link):
                lookup[first].pop(second, None)
                lookup[second].pop(first, None)
        assembled.update(animal.joints)
        animals.append(animal)
    if len(animals) == individuals:
        return animals, assembled
    for link in sorted(links, key=lambda item: item.affinity, reverse=True):
        if any(i in assembled for i in link.indices):
            continue
        animal = Animal(keypoints)
        animal.add_link(link)
        _grow(animal, lookup, assembled, keypoints)
        for taken in animal.links:
            first, second = taken.indices
            lookup.setdefault(first, {}).pop(second, None)
            lookup.setdefault(second, {}).pop(first, None)
        assembled.update(animal.joints)
        animals.append(animal)
    if len(animals) > individuals:
        _fuse_partial_animals(animals, links, keypoints)
    for animal in animals:  # a second pass
        if len(animal) != keypoints:
            _grow(animal, lookup, assembled, keypoints)
            assembled.update(animal.joints)
    return animals, assembled


def _fuse_partial_animals(animals: list[Animal], links: Iterable[Link], keypoints: int) -> None:
    """Merge incomplete animals joined by a link no animal uses, if their keypoints differ."""
    owner: dict[int, Animal] = {}
    for animal in animals:
        if len(animal) != keypoints:
            for joint in animal.joints:
                owner[joint] = animal
    used = {id(link) for animal in animals for link in animal.links}
    for link in links:
        if id(link) in used:
            continue
        first, second = link.indices
        if first not in owner or second not in owner:
            continue
        keeper, absorbed = owner[first], owner[second]
        if absorbed.shares_keypoints_with(keeper):
            continue
        keeper.take_over(keeper.merged_with(absorbed))
        animals.remove(absorbed)
        for joint in absorbed.joints:
            owner[joint] = keeper


def assemble(
    found: FramePeaks, pafs: np.ndarray, keypoints: int, settings: DlcAssemblySettings
) -> list[Animal]:
    """One frame's animals, in DeepLabCut's order (after its pose suppression)."""
    joints = _joints(found, keypoints)
    if not joints:
        return []
    by_label: dict[int, list[Joint]] = {}
    for joint in joints:
        by_label.setdefault(joint.label, []).append(joint)
    if keypoints == 1:
        animals = []
        for joint in by_label.get(0, []):
            if joint.confidence >= settings.pcutoff:
                animal = Animal(1)
                animal.add_joint(joint)
                animals.append(animal)
        return animals
    if settings.individuals == 1:
        animal = Animal(keypoints)
        for label in range(keypoints):
            if by_label.get(label):
                animal.add_joint(max(by_label[label], key=lambda j: j.confidence))
        return [animal]
    links = best_links(by_label, pafs, found, settings)
    animals, _ = build_animals(links, keypoints, settings.individuals)
    animals = [a for a in animals if not (0 < len(a.links) < settings.min_n_links or not len(a))]
    if 0 < settings.max_overlap < 1:
        animals = _suppress_overlapping(animals, settings.max_overlap)
    if len(animals) > settings.individuals:
        animals = sorted(animals, key=len, reverse=True)[: settings.individuals]
    return animals


def _suppress_overlapping(animals: list[Animal], max_overlap: float) -> list[Animal]:
    """Keep the best animal (summed affinity), drop those overlapping it, repeat."""
    scored = [(a.affinity_sum, a) for a in animals]
    kept: list[Animal] = []
    while scored:
        best = max(scored, key=lambda pair: pair[0])
        scored.remove(best)
        kept.append(best[1])
        for pair in scored[::-1]:
            if best[1].overlap_with(pair[1]) >= max_overlap:
                scored.remove(pair)
    return kept


# --- the estimator's decoder --------------------------------------------------------------------


def decode_frame(
    peaks: np.ndarray, locref: np.ndarray, pafs: np.ndarray, settings: DlcAssemblySettings
) -> np.ndarray:
    """One frame's animals (A, K, 3) in input pixels, DeepLabCut's order; NaN where missing."""
    keypoints = peaks.shape[0]
    result = np.full((settings.individuals, keypoints, 3), np.nan)
    found = find_peaks(peaks, locref, settings)
    if not len(found.parts):
        return result
    animals = assemble(found, pafs, keypoints, settings)
    for row, animal in enumerate(animals[: settings.individuals]):  # 1 keypoint: any number
        # DeepLabCut writes its poses as float32
        result[row] = animal.data.astype(np.float32)
    if settings.clip_scores:
        result[..., 2] = np.clip(result[..., 2], 0.0, 1.0)
    return result


def decode_dlc_assembly(outputs: list[np.ndarray], description: ModelDescription) -> np.ndarray:
    """Return each frame's animals (N, A, K, 3), A = ``description.max_animals``, input pixels.

    ``max_animals`` keeps the first of DeepLabCut's individuals, or adds empty rows.
    """
    settings = decoding_of(description, DlcAssemblySettings, "DeepLabCut assembly settings")
    named = named_outputs(outputs, description, OUTPUT_NAMES, "a DeepLabCut PAF model's graph")
    if settings.identity is not None:
        return decode_dlc_identity(outputs, description)[0]
    animals = int(description.max_animals)
    frames = len(named["peaks"])
    result = np.full((frames, animals, len(description.keypoints), 3), np.nan)
    for i in range(frames):
        decoded = decode_frame(named["peaks"][i], named["locref"][i], named["pafs"][i], settings)
        rows = min(animals, len(decoded))
        result[i, :rows] = decoded[:rows]
    return result


def decode_dlc_identity(
    outputs: list[np.ndarray], description: ModelDescription
) -> tuple[np.ndarray, np.ndarray]:
    """Return each frame's animals by individual (N, I, K, 3) and their identity confidence.

    Row i is individual i in every frame; NaN rows and confidences where it was not found.
    """
    settings = decoding_of(description, DlcAssemblySettings, "DeepLabCut assembly settings")
    if settings.identity is None:
        raise ModelError(f"{description.model_file}: the model has no identity head")
    expected = (*OUTPUT_NAMES, IDENTITY_OUTPUT)
    named = named_outputs(outputs, description, expected, "a DeepLabCut identity model's graph")
    frames = len(named["peaks"])
    individuals = len(settings.identity.individuals)
    result = np.full((frames, individuals, len(description.keypoints), 3), np.nan)
    confidence = np.full((frames, individuals), np.nan)
    for i in range(frames):
        decoded = decode_frame(named["peaks"][i], named["locref"][i], named["pafs"][i], settings)
        identified = identify(decoded, named[IDENTITY_OUTPUT][i], settings.identity)
        result[i] = identified.animals
        confidence[i] = identified.confidence
    return result, confidence


def decode_dlc(outputs: list[np.ndarray], description: ModelDescription) -> Decoded:
    """DeepLabCut's assembly, and with an identity head its individuals and their confidences."""
    if description.identity_classes:
        return decode_dlc_identity(outputs, description)
    return decode_dlc_assembly(outputs, description), None


#: ``decoder = "dlc-assembly"``: DeepLabCut 3.0's multi-animal PAF models (identity head or not).
DLC_ASSEMBLY = Decoder(decode_dlc, multi_animal=True)
