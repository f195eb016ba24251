"""Train a map: `python train.py dataset=... method=... aug=...` (Hydra; `-m` for sweeps)."""

import signal
import sys

import hydra
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from medviz.errors import MedvizError
from medviz.pipeline import train
from medviz.run_folder import register_resolvers
from medviz.sweep import in_multirun

register_resolvers()  # before Hydra resolves the run folder (conf/train.yaml)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except MedvizError as err:
        if in_multirun():  # the sweep records the failure and runs the other jobs
            raise
        # The message says what is wrong and what to do: no traceback needed.
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(1)
    except SIGTERMException:  # the checkpoint is saved and the resume command printed
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    main()
