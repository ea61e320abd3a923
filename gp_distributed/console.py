"""What `gp` prints, decided in one place: our own lines, and how loud the libraries underneath may be.

Quiet (the default): each library's own verbosity switch is turned down where the library reads it, never
by filtering text afterwards. `--verbose` leaves every library at its defaults. The driver calls
`configure_console` once (cli.main) before any library is imported; Ray worker processes of the job get
`worker_environment()` and run `configure_worker_process` at start-up (Ray's `worker_process_setup_hook`,
set by train/launcher.py), so the Ray Train controller and the training workers are quiet too.

Training progress: rank 0 owns a `StepProgress`: one line per logged step (step, loss, lr, throughput,
ETA), or, when the user's stdout is a terminal, a progress bar with ETA; evaluations and checkpoints are
one line each. Nothing here changes the environment at import time.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import Protocol

VERBOSE_ENV = "GP_VERBOSE"  # "1": libraries keep their default output (set by `gp --verbose`)
PROGRESS_BAR_ENV = "GP_PROGRESS_BAR"  # "1": the user's stdout is a terminal, draw a bar instead of step lines

# Each library's own switch, as it reads it (at import or per call). A value the user exported wins.
_QUIET_LIBRARY_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" bars while logging the model
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # "Creating initial MLflow database tables", system-metrics notes
    "TRANSFORMERS_VERBOSITY": "error",
    "RAY_DISABLE_WORKER_LOG_PREFIX": "1",  # rank 0's lines reach the user without "(RayTrainWorker pid=..)"
}
# Both modes. Ray Train V2 patches `print` on workers to log through the root logger, and tees to the
# original print as well whenever sys.stdout is not sys.__stdout__, which is always so in a Ray worker
# (Ray reopens the worker's stdout): every line printed on a worker reached the driver twice, on its
# stdout and on its stderr. Without the patch a worker's print goes to its stdout only.
_ALWAYS_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}

# Python loggers of the libraries and the level they keep when quiet. Ray's own warnings on the driver
# stay (resources, failures); in worker processes Ray's loggers say only errors, since the Ray Train
# placement-group cleaner warns every second that it cannot reach the State API, which a private
# dashboard-less Ray (train/launcher.py) does not serve.
_QUIET_DRIVER_LEVELS = {"ray": logging.WARNING, "mlflow": logging.WARNING, "alembic": logging.WARNING,
                        "DeepSpeed": logging.ERROR, "transformers": logging.ERROR, "peft": logging.ERROR}
_QUIET_WORKER_LEVELS = {**_QUIET_DRIVER_LEVELS, "ray": logging.ERROR}

# Deprecations raised inside libraries by other libraries, which a user can do nothing about: each by
# category and the module that warns.
_LIBRARY_WARNINGS = (
    # DeepSpeed's ZeRO calls torch.distributed.all_gather_into_tensor, deprecated by torch 2.13.
    (FutureWarning, r"torch\.distributed\.c10d_logger"),
)


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def configure_console(verbose: bool) -> None:
    """The `gp` process: call once, first thing, before Ray, MLflow, DeepSpeed or transformers are imported
    (several read their switches at import). Sets the switches in os.environ as well, so processes started
    from here (a local Ray, and through `worker_environment` any Ray worker) inherit them."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    os.environ.setdefault(PROGRESS_BAR_ENV, "1" if sys.stdout.isatty() and not verbose else "0")
    for name, value in worker_environment().items():
        os.environ.setdefault(name, value)
    _quiet_loggers(_QUIET_DRIVER_LEVELS)


def worker_environment() -> dict[str, str]:
    """The variables every Ray worker process of a training job needs (launcher `runtime_env`): this
    process's console choice, and the library switches that follow from it."""
    env = {VERBOSE_ENV: "1" if is_verbose() else "0", PROGRESS_BAR_ENV: os.environ.get(PROGRESS_BAR_ENV, "0"),
           **_ALWAYS_ENV}
    if not is_verbose():
        env.update({name: os.environ.get(name, value) for name, value in _QUIET_LIBRARY_ENV.items()})
    return env


def configure_worker_process() -> None:
    """Ray's `worker_process_setup_hook`: runs in every worker process of the job before its first task
    (controller, placement-group cleaner, training workers), with `worker_environment()` already set."""
    _quiet_loggers(_QUIET_WORKER_LEVELS)


def ray_train_log_level() -> str:
    """Ray Train's own verbosity (`RunConfig.logging_config`): its INFO lines ("Reporting training result"
    with every metric, "Checkpoint successfully created", worker-group start-up) only when verbose."""
    return "INFO" if is_verbose() else "WARNING"


def ray_driver_log_level() -> int:
    """The level `ray.init` gives the driver's "ray" logger ("Started a local Ray instance" is INFO)."""
    return logging.INFO if is_verbose() else logging.WARNING


def quiet_logger(name: str, level: int | None = None) -> None:
    """Lower one library logger (to `level`, else its quiet level here), for a library that sets its own
    level when imported (DeepSpeed) or logs under a name the switches above do not reach."""
    if not is_verbose():
        logging.getLogger(name).setLevel(level if level is not None else _QUIET_DRIVER_LEVELS[name])


def _quiet_loggers(levels: dict[str, int]) -> None:
    if is_verbose():
        return
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for category, module in _LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", category=category, module=module)


@contextmanager
def library_output() -> Iterator[None]:
    """Around a library call that prints with no switch to turn it off (DeepSpeed announces its
    communication op on every engine start, MLflow each registered model and version): quiet, what it
    prints to sys.stdout / sys.stderr is kept back, and shown on stderr only if the call fails; verbose, it
    passes through. Loggers keep the streams they were given, so logged warnings still show."""
    if is_verbose():
        yield
        return
    captured = io.StringIO()
    try:
        with redirect_stdout(captured), redirect_stderr(captured):
            yield
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise


class ProgressBar(Protocol):
    """The part of a tqdm bar StepProgress uses (tqdm's, or Ray's driver-rendered tqdm_ray)."""

    n: int

    def update(self, n: int = 1) -> None: ...

    def set_description(self, desc: str) -> None: ...

    def close(self) -> None: ...


def wants_progress_bar() -> bool:
    return os.environ.get(PROGRESS_BAR_ENV) == "1"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}h{whole // 60 % 60:02d}m" if whole >= 3600 else f"{whole // 60}m{whole % 60:02d}s"


class StepProgress:
    """Rank 0's console during training. `step` every optimizer step; `note` for an evaluation or a
    checkpoint. With a `bar`, the bar advances every step and shows the last logged loss; without one,
    each logged step (the first, then every `every` steps and the last) is one line with an ETA from the
    steps run since `initial_step`. Other ranks pass `enabled=False` and print nothing."""

    def __init__(self, total_steps: int, initial_step: int, *, enabled: bool, bar: ProgressBar | None = None,
                 every: int = 10):
        self.total_steps = total_steps
        self.initial_step = initial_step
        self.enabled = enabled
        self.bar = bar if enabled else None
        self.every = every
        self.started = time.perf_counter()

    def step(self, step: int, loss: float, learning_rate: float, genes_per_second: float) -> None:
        if not self.enabled:
            return
        logged = step == self.initial_step + 1 or step % self.every == 0 or step == self.total_steps
        if self.bar is not None:
            if logged:
                self.bar.set_description(f"loss {loss:.4f}")
            self.bar.update(step - self.bar.n)
            return
        if logged:
            print(f"step {step}/{self.total_steps}: loss {loss:.4f} lr {learning_rate:.2e} "
                  f"{genes_per_second:.1f} genes/s{self._eta(step)}", flush=True)

    def note(self, line: str) -> None:
        """One line (an evaluation, a checkpoint), above the bar when there is one."""
        if not self.enabled:
            return
        if self.bar is not None and hasattr(self.bar, "write"):  # tqdm: keep the bar below the line
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _eta(self, step: int) -> str:
        done = step - self.initial_step
        if done <= 0 or step >= self.total_steps:
            return ""
        remaining = (time.perf_counter() - self.started) / done * (self.total_steps - step)
        return f", eta {_duration(remaining)}"
