"""``loes slurm``: a cross-validation as a SLURM job array (one task per fold and repeat) plus
a report job; written into the run folder, submitted with ``--submit``."""

from __future__ import annotations

import argparse

from loes.cli._settings import add_settings_arguments


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "slurm",
        help="write (and submit) SLURM jobs: one per fold, then the report",
        description="Prepare the run folder as `loes cv` would (config.yaml, scans.csv, "
        "splits.json) and write into RUN_DIR/slurm/ a job-array script with one task per fold "
        "and repeat (each runs `loes cv --fold K --repeat R` and resumes from its checkpoint "
        "when requeued), a report job, submit.sh and a README. Takes the settings of `loes cv`.",
        epilog="examples:\n"
        "  loes slurm --config configs/gpu.yaml --partition gpu --gpus-per-job 1 --cpus-per-job 8 "
        "--mem 32G --time 04:00:00 --submit\n"
        "  loes slurm data/manifest.csv --folds 10 --cpus-per-job 4 --mem 16G   # then: bash "
        "runs/manifest/slurm/submit.sh",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_arguments(parser)
    parser.add_argument("--partition", help="SLURM partition (queue) of the fold jobs")
    parser.add_argument(
        "--report-partition",
        help="SLURM partition of the report job, which needs no GPU (default: --partition "
        "when the folds ask for no GPU, else the cluster's default)",
    )
    parser.add_argument("--account", help="SLURM account the jobs are charged to")
    parser.add_argument(
        "--gpus-per-job",
        type=int,
        default=0,
        metavar="N",
        help="GPUs per fold task (--gres=gpu:N; N > 1 trains each fold with N processes "
        "through torchrun); default 0",
    )
    parser.add_argument(
        "--cpus-per-job", type=int, metavar="N", help="CPU cores per fold task (--cpus-per-task)"
    )
    parser.add_argument("--mem", metavar="SIZE", help="memory per fold task, e.g. 32G (--mem)")
    parser.add_argument(
        "--time", metavar="LIMIT", help="time limit per fold task, e.g. 04:00:00 (--time)"
    )
    parser.add_argument(
        "--report-after",
        choices=["ok", "any"],
        default="ok",
        help="with --submit: the report job runs when every fold succeeded (ok, the default) "
        "or when the array ends whatever happened (any)",
    )
    parser.add_argument(
        "--submit", action="store_true", help="submit the jobs with sbatch and print their ids"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from loes.cli._settings import resolve_config
    from loes.pipeline.cluster.slurm import SlurmResources, slurm_cross_validation

    resources = SlurmResources(
        partition=args.partition,
        report_partition=args.report_partition,
        account=args.account,
        gpus_per_job=args.gpus_per_job,
        cpus_per_job=args.cpus_per_job,
        mem=args.mem,
        time=args.time,
    )
    slurm_cross_validation(resolve_config(args), resources, args.submit, args.report_after)
    return 0
