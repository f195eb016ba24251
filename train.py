"""Train a map: `python train.py dataset=... method=... aug=...` (Hydra; `-m` for sweeps)."""

import signal
import sys

import hydra
from omegaconf import DictConfig

from medviz.errors import MedvizError
from medviz.training.config_checks import check_config
from medviz.training.run_folder import named_resume_folder, register_resolvers
from medviz.training.sweep import in_multirun

register_resolvers()  # before Hydra resolves the run folder (conf/train.yaml)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        check_config(cfg)
        named_resume_folder(cfg.get("resume"))
        # Imported once the settings are known to be sound: a mistyped value or folder is reported
        # at once, not after the seconds it takes to import PyTorch and Lightning.
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from medviz.training.pipeline import train

        try:
            train(cfg)
        except SIGTERMException:  # the checkpoint is saved and the resume command printed
            sys.exit(128 + signal.SIGTERM)
    except MedvizError as err:
        if in_multirun():  # the sweep records the failure and runs the other jobs
            raise
        # The message says what is wrong and what to do: no traceback needed.
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 1))


if __name__ == "__main__":
    main()
