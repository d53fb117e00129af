"""The jobs of the pipeline's DAG for a config, as Snakemake builds them: each job's rule, wildcards and params, or
the `snakemake` object its script would get. Run as a process of its own (tests/test_boundary.py), so that parsing
the workflow leaves the test process alone:

    python tests/workflow_jobs.py params WORKDIR OUT.json CONFIG [CONFIG ...]
    python tests/workflow_jobs.py objects WORKDIR OUTDIR CONFIG

`params` writes {config: {job: {param: repr}}} (a job is "<rule> <wildcards>"), with every job of the DAG forced,
parsing the workflow once per config. `objects` writes, for the first job of every rule (wildcards sorted), the
pickled `snakemake` object of Snakemake's script preamble, with its config reduced to the execution settings
(weightscape.settings.execution_only), plus index.json: [{rule, job, script, inputs, outputs}] (paths relative to
WORKDIR, as the job sees them).

Snakemake's API has no public call that lists a DAG's jobs; this builds the DAG the way its own `--list-changes`
does (Workflow._prepare_dag / _build_dag) and reads the jobs, changing nothing.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dag_jobs(workdir: Path, configfile: Path) -> tuple[list, dict]:
    """Every job of the forced DAG of the pipeline in `workdir` with `configfile`, and the workflow's config (as
    the Snakefile validated it)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings, Quietness,
                                          ResourceSettings)

    here = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1),
                                        config_settings=ConfigSettings(configfiles=[configfile.resolve()]),
                                        snakefile=REPO / "Snakefile", workdir=workdir)
            dag_settings = workflow_api.dag(DAGSettings(forceall=True)).dag_settings
            workflow = workflow_api._workflow
            workflow.dag_settings = dag_settings
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            workflow._build_dag()
            return [job for job in workflow.dag.jobs if job.rule.name != "all"], workflow.config
    finally:
        os.chdir(here)


def job_name(job) -> str:
    return f"{job.rule.name} {json.dumps(dict(sorted(job.wildcards.items())))}"


def params(workdir: Path, out: Path, configfiles: list[Path]) -> None:
    found = {}
    for configfile in configfiles:
        found[str(configfile)] = {job_name(job): {name: repr(value) for name, value in job.params.items()}
                                  for job in dag_jobs(workdir, configfile)[0]}
    out.write_text(json.dumps(found, indent=1))


def objects(workdir: Path, outdir: Path, configfile: Path) -> None:
    from snakemake.iocontainers import Snakemake

    from weightscape.settings import execution_only

    jobs, config = dag_jobs(workdir, configfile)
    first = {}
    for job in sorted(jobs, key=job_name):
        first.setdefault(job.rule.name, job)
    index = []
    for rule, job in sorted(first.items()):
        obj = Snakemake(job.input, job.output, job.params, job.wildcards, job.threads, job.resources, job.log,
                        execution_only(config), rule, 0, str(REPO / "workflow_scripts"))
        with open(outdir / f"{rule}.pickle", "wb") as fh:
            pickle.dump(obj, fh, protocol=4)
        index.append({"rule": rule, "job": job_name(job), "inputs": list(obj.input), "outputs": list(obj.output),
                      "script": str((Path(job.rule.snakefile).parent / job.rule.script).resolve())})
    (outdir / "index.json").write_text(json.dumps(index, indent=1))


if __name__ == "__main__":
    mode, workdir, out, *configs = sys.argv[1:]
    if mode == "params":
        params(Path(workdir).resolve(), Path(out), [Path(c) for c in configs])
    else:
        objects(Path(workdir).resolve(), Path(out), Path(configs[0]))
