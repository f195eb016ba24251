"""Quality control: planted duplicates and artefacts, and the detector that flags them in a map."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import HDBSCAN

from medviz.data.prepare.qc_inject import inject
from medviz.data.synthetic.synthblood import load_synthblood
from medviz.errors import ConfigError
from medviz.maps.qc import find_groups, image_similarity, recall, sampling_note
from medviz.training.pipeline import train
from tests.helpers.commands import medviz
from tests.helpers.config import TINY, compose_config


def test_duplicates_are_perturbed_copies_of_one_image():
    data = load_synthblood(n_images=200, seed=0)
    grown, planted = inject(data, "duplicates", 30, seed=1)
    assert len(grown) == 230 and planted.sum() == 30 and planted[200:].all()
    copies = grown.images[planted]
    assert len({c.tobytes() for c in copies}) == 30  # each copy differs ...
    ordinary = image_similarity(data.images[data.labels == grown.labels[planted][0]][:30])  # same class
    assert image_similarity(copies) > ordinary + 0.25  # ... but they are near-duplicates
    assert len(set(grown.labels[planted])) == 1


def test_artefacts_paint_a_black_blob_on_existing_images():
    data = load_synthblood(n_images=200, seed=0)
    changed, planted = inject(data, "artefacts", 25, seed=1)
    assert len(changed) == 200 and planted.sum() == 25
    black = (changed.images[planted].max(axis=-1) == 0).mean(axis=(1, 2))
    assert (black > 0.1).all() and (data.images[planted].max(axis=-1) == 0).mean() < 0.01
    assert np.array_equal(changed.images[~planted], data.images[~planted])


def test_bad_injection_settings():
    data = load_synthblood(n_images=20, seed=0)
    with pytest.raises(ConfigError, match="qc.count must be between 1 and the dataset's 20 images"):
        inject(data, "duplicates", 50, seed=0)
    with pytest.raises(ConfigError, match="choose one of: duplicates, artefacts"):
        inject(data, "smudges", 5, seed=0)
    with pytest.raises(ConfigError, match="at least 16 images; 'synthblood' has 10"):
        inject(load_synthblood(n_images=10, seed=0), "artefacts", 5, seed=0)


def planted_map(seed: int = 0):
    """Three Gaussian classes (1,500 points), a tight cluster of 100 and an island of 50 far away."""
    rng = np.random.default_rng(seed)
    classes = np.concatenate([rng.normal(centre, 3.0, (500, 2)) for centre in ([0, 0], [15, 0], [7, 13])])
    tight = rng.normal([7, 4], 0.05, (100, 2))
    island = rng.normal([40, 40], 1.0, (50, 2))
    coords = np.vstack([classes, tight, island])
    planted = np.zeros(len(coords), bool)
    planted[1500:] = True
    return coords, planted


def test_detector_flags_a_tight_cluster_and_an_island_and_little_else():
    coords, planted = planted_map()
    groups = find_groups(coords)
    assert recall(groups, planted) == 1.0
    kinds = {g.kind for g in groups}
    assert kinds == {"tight cluster", "isolated island"}
    flagged = np.zeros(len(coords), bool)
    for group in groups:
        flagged[group.indices] = True
    assert flagged[~planted].mean() < 0.02  # ordinary regions are rarely flagged


def test_a_map_larger_than_the_cluster_sample_is_clustered_on_a_sample_and_says_so():
    # The planted map grown 4x (classes 6,000 points, the tight cluster 400, the island 200), clustered
    # on a sample of 1,500: the island is found on the sample and grows to all its points, the tight
    # cluster is found in all points, and little else is flagged.
    rng = np.random.default_rng(1)
    classes = np.concatenate([rng.normal(centre, 3.0, (2000, 2)) for centre in ([0, 0], [15, 0], [7, 13])])
    tight, island = rng.normal([7, 4], 0.05, (400, 2)), rng.normal([40, 40], 1.0, (200, 2))
    coords = np.vstack([classes, tight, island])
    groups = find_groups(coords, cluster_sample=1500)
    kinds = {g.kind: g for g in groups}
    assert set(kinds) == {"tight cluster", "isolated island"}
    assert set(kinds["isolated island"].indices.tolist()) == set(range(6400, 6600))
    assert set(range(6000, 6400)) <= set(kinds["tight cluster"].indices.tolist())
    assert sum(g.size for g in groups) < 6600 + 0.02 * 6000
    note = sampling_note(len(coords), 1500)
    assert "sample of 1,500 of the 6,600 points" in note and "fewer than about 66 images" in note
    assert sampling_note(1400, 1500) == ""
    with pytest.raises(ConfigError, match="cluster sample"):
        find_groups(coords, cluster_sample=10)


def test_a_uniform_region_cut_into_small_clusters_raises_no_island():
    # HDBSCAN splits an even spread of points into many small clusters (seed 0: 15 of them, each
    # under 5 % of the points); they touch each other, so none is isolated and none is flagged.
    coords = np.random.default_rng(0).uniform(0, 20, (1500, 2))
    assert HDBSCAN(min_cluster_size=15, min_samples=10, copy=True).fit(coords).labels_.max() >= 5
    assert find_groups(coords) == []


def test_groups_carry_the_measures_behind_the_flag():
    coords, planted = planted_map()
    groups = {g.kind: g for g in find_groups(coords)}
    assert groups["tight cluster"].spacing < 0.5
    assert groups["isolated island"].separation >= 1.75


def test_a_qc_run_reports_where_the_planted_images_landed(tmp_path):
    cfg = compose_config(
        [*TINY, "schedule.epochs=[1,1,1]", "schedule.warmup_epochs=[0,0,0]", "qc.inject=duplicates", "qc.count=20"],
        run_dir=tmp_path,
    )
    metrics = train(cfg)
    assert 0.0 <= metrics["qc_recall"] <= 1.0 and metrics["n_images"] == 116
    assert np.load(tmp_path / "qc_injected.npy").sum() == 20
    assert (tmp_path / "qc" / "report.md").read_text().startswith("# Quality control")
    done = medviz("qc", "--run", str(tmp_path), "--out", str(tmp_path / "again"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"planted images flagged: {metrics['qc_recall']:.3f} of 20" in done.stdout
    assert {"report.md", "flagged.csv", "overview.png"} <= {p.name for p in (tmp_path / "again").iterdir()}
    refused = medviz("qc", "--run", str(tmp_path), "--island-fraction", "2")
    assert refused.returncode == 1 and "island fraction 2.0 (0-1]" in refused.stderr, refused.stderr[-3000:]


def test_qc_presets_compose_with_the_quickstart():
    cfg = compose_config(["experiment=[quickstart,qc_artefacts]"])
    assert cfg.qc.inject == "artefacts" and cfg.qc.count == 50 and cfg.batch_size == 128


def test_qc_settings_out_of_range_are_named():
    coords, _ = planted_map()
    with pytest.raises(ConfigError, match="island fraction 1.5"):
        find_groups(coords, island_fraction=1.5)
    with pytest.raises(ConfigError, match="the map has 12 points; quality control needs more than 15"):
        find_groups(coords[:12])


def test_a_duplicate_group_is_more_alike_than_other_images_of_its_class():
    data = load_synthblood(n_images=600, seed=0)
    grown, planted = inject(data, "duplicates", 100, seed=1)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-40, 40, (len(grown.class_names), 2))
    coords = centres[grown.labels] + rng.normal(0, 3.0, (len(grown), 2))
    coords[planted] = centres[grown.labels[planted]] + 8 + rng.normal(0, 0.05, (100, 2))
    groups = find_groups(coords, grown.images, grown.labels)
    tight = [g for g in groups if g.kind == "tight cluster"]
    assert len(tight) == 1 and planted[tight[0].indices].mean() > 0.95
    assert tight[0].image_similarity > tight[0].typical_similarity + 0.1


def labelled_blobs(spec, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes: (n, centre, spread) each; the points and their labels."""
    rng = np.random.default_rng(seed)
    coords = np.concatenate([rng.normal(centre, spread, (n, 2)) for n, centre, spread in spec])
    return coords, np.concatenate([np.full(n, label) for label, (n, _, _) in enumerate(spec)])


def test_a_compact_class_is_not_a_tight_cluster():
    """A clean map of 3 classes, one of similar-looking images packed tighter than the others."""
    coords, labels = labelled_blobs([(200, (0, 0), 0.15), (200, (6, 0), 1.0), (200, (0, 6), 1.0)])
    assert find_groups(coords, labels=labels) == []
    assert find_groups(coords) == []  # unlabelled: a third of the map is no near-duplicate group either


def test_a_rare_class_set_apart_is_not_an_island():
    """4.7 % of the points, all of one class and all of that class, well away from the rest."""
    coords, labels = labelled_blobs([(280, (0, 0), 1.0), (292, (6, 0), 1.0), (28, (14, 14), 0.5)])
    groups = find_groups(coords, labels=labels)
    assert not [g for g in groups if g.kind == "isolated island"]
    assert sum(g.size for g in groups) <= 0.02 * len(coords)  # a chance dense spot at most
    unlabelled = find_groups(coords)  # without labels it may be anything: worth a look
    assert [g.size for g in unlabelled if g.kind == "isolated island"] == [28]
