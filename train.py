"""Train a map: `python train.py dataset=... method=... aug=...` (Hydra; `-m` for sweeps)."""

import hydra
from omegaconf import DictConfig

from medviz.pipeline import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
