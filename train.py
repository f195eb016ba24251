"""Train a map: `python train.py dataset=... method=... aug=...` (Hydra; `-m` for sweeps)."""

import sys

import hydra
from omegaconf import DictConfig

from medviz.data.errors import DataError
from medviz.pipeline import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except DataError as err:
        # The message says what is wrong, with which file, and what to do: no traceback needed.
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
