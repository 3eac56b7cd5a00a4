"""Work units and executors: in-process, ``concurrent.futures``, ``dask.distributed`` (DESIGN.md,
"Scale beyond one machine").

The analyses split their work into units (pure functions of picklable inputs) and hand
them to :func:`run_units`, which runs them on the executor the user gave (``executor=``:
``None``, a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``), splits the
units that run long, retries the ones lost with a worker and merges the results in a fixed
order. This layer imports only :mod:`mipnet.core`; it knows nothing of the analyses.
"""

from __future__ import annotations

from .executor import (
    InProcess,
    RunReport,
    UnitRun,
    as_executor,
    connect,
    executor_from,
    is_dask_client,
    local_cluster,
    report_progress,
    run_units,
    workers_of,
)

__all__ = ["InProcess", "RunReport", "UnitRun", "as_executor", "connect", "executor_from", "is_dask_client", "local_cluster",
           "report_progress", "run_units", "workers_of"]
