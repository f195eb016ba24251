"""Evaluate maps: `python evaluate.py run=<run dir>`, baselines, and the paper's tables (see conf/evaluate.yaml)."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from medviz.errors import MedvizError
from medviz.training.run_folder import register_resolvers

register_resolvers()  # dataset names of data read from a path (conf/dataset/folder.yaml)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        if cfg.run and not Path(cfg.run).is_dir():  # said at once, before importing PyTorch
            raise MedvizError(f"run folder {cfg.run} does not exist: pass a folder that train.py wrote")
        from medviz.evaluation.pipeline import evaluate

        evaluate(cfg)
    except (MedvizError, FileNotFoundError) as err:
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
