"""Cut or update a dataset's store without training: `python ingest.py dataset=... [-m dataset.plate=P1,P2]`.

The same settings as train.py. As a Hydra multirun over `dataset.plate`, each plate of a screen is
cut by a job of its own into a shard of the store (local processes or SLURM through the submitit
launcher, docs/plates.md); a training over every plate then copies the shards instead of cutting again.
"""

import sys

import hydra
from omegaconf import DictConfig

from medviz.errors import MedvizError
from medviz.training.config_checks import check_config
from medviz.training.run_folder import register_resolvers
from medviz.training.sweep import in_multirun

register_resolvers()  # before Hydra resolves the run folder (conf/ingest.yaml)


@hydra.main(version_base="1.3", config_path="conf", config_name="ingest")
def main(cfg: DictConfig) -> None:
    try:
        check_config(cfg)
        from medviz.runs.ingest_command import ingest_dataset

        for report in ingest_dataset(cfg):
            print(f"store {report.store}: {report}")
    except MedvizError as err:
        if in_multirun():  # the sweep records the failure and runs the other jobs
            raise
        print(f"medviz: error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 1))


if __name__ == "__main__":
    main()
