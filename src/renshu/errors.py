"""The errors a user can cause that are renshu's own (the CLI turns each into one line)."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not renshu's."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf loss or gradient; the run stopped at its last good state."""


class WriteError(OSError):
    """A file renshu writes could not be written (full disk, read-only or missing directory, no
    permission); the message names the file, the reason and, for a full disk, the space."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RunInUseError(RuntimeError):
    """Another living process holds the run directory's lock (one writer per run)."""


class StopSignal(KeyboardInterrupt):
    """A second SIGINT, SIGTERM or SIGHUP: stop at once (the previous checkpoint is kept)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum
