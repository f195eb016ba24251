"""Evaluate maps: `python evaluate.py run=<run dir>`, baselines, and the paper's tables (see conf/evaluate.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from medviz.errors import MedvizError


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    # Imported after Hydra has composed the config: a mistyped option is reported at once.
    from medviz.evaluation.pipeline import evaluate

    try:
        evaluate(cfg)
    except (MedvizError, FileNotFoundError) as err:
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
