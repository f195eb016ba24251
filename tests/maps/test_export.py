"""medviz export: the run as AnnData (read back with anndata) and as a Parquet profile table (read back with pandas)."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml

from medviz.cli import main as medviz_main
from medviz.errors import ConfigError
from medviz.maps.export import export_h5ad, export_parquet
from medviz.training.pipeline import train

pytestmark = pytest.mark.trains


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory) -> Path:
    from tests.helpers.config import TINY, compose_config

    run_dir = tmp_path_factory.mktemp("export") / "run"
    train(compose_config([*TINY, "dataset.batches=2", "schedule.epochs=[1,1,1]"], run_dir=run_dir))
    return run_dir


def test_h5ad_holds_the_map_the_128d_output_features_metadata_and_colours(batch_run):
    path = export_h5ad(batch_run)
    adata = anndata.read_h5ad(path)
    saved = np.load(batch_run / "embedding.npz")
    outputs = np.load(batch_run / "outputs.npz")
    assert adata.n_obs == 96 and list(adata.obs_names) == [str(i) for i in range(96)]
    np.testing.assert_allclose(adata.obsm["X_tsimcne"], saved["embedding"])  # same order as embedding.npz
    np.testing.assert_allclose(adata.obsm["X_tsimcne_128d"], outputs["high"])
    np.testing.assert_allclose(adata.X, outputs["features"])
    assert adata.var_names[0] == "feature_0"
    assert adata.obs["batch"].dtype == "category" and set(adata.obs["batch"]) == {"batch1", "batch2"}
    names = [str(n) for n in saved["class_names"]]
    assert list(adata.obs["class"].astype(str)) == [names[i] for i in saved["labels"]]
    assert len(adata.uns["batch_colors"]) == 2 and adata.uns["batch_colors"][0].startswith("#")
    assert yaml.safe_load(adata.uns["medviz_config"])["dataset"]["batches"] == 2


def test_without_features_and_as_a_parquet_profile_table(batch_run, tmp_path):
    empty = anndata.read_h5ad(export_h5ad(batch_run, tmp_path / "small.h5ad", features=False))
    assert empty.n_vars == 0 and "X_tsimcne" in empty.obsm
    profiles = pd.read_parquet(export_parquet(batch_run))
    assert {"Metadata_batch", "Metadata_index", "Metadata_class", "Metadata_map_x", "Metadata_map_y"} <= set(profiles)
    features = [c for c in profiles if c.startswith("medviz_")]
    assert len(features) == np.load(batch_run / "outputs.npz")["features"].shape[1]
    assert profiles["Metadata_index"].tolist() == list(range(96))


def test_the_command_line_and_a_folder_that_is_no_run(batch_run, tmp_path, capsys):
    medviz_main(["export", "--run", str(batch_run), "--out", str(tmp_path / "m.h5ad")])
    assert "h5ad: " in capsys.readouterr().out and (tmp_path / "m.h5ad").is_file()
    with pytest.raises(ConfigError, match="not a finished training run folder"):
        export_h5ad(tmp_path)
